"""The documented differences between the simulator and livekit-server v1.13.5 in compared fields (the table in
devstack/livekit_sim/README.md also lists the timing differences, which are not compared). A difference is named
``<step>:<field path>`` (a glob pattern here); anything not listed fails the suite."""

from __future__ import annotations

import fnmatch

# Empty: the simulator answers every scripted call as the real server does. Add an entry only with its reason.
ALLOWANCE: dict[str, str] = {}


def unexplained(differences: dict[str, tuple[object, object]]) -> dict[str, tuple[object, object]]:
    """The differences no allowance entry covers."""
    return {
        name: pair
        for name, pair in differences.items()
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in ALLOWANCE)
    }
