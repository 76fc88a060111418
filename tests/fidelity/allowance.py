"""The documented differences between the simulator and livekit-server v1.13.5 (also in
devstack/livekit_sim/README.md). A difference is named ``<step>:<field path>``; anything not listed fails the suite."""

from __future__ import annotations

import fnmatch

ALLOWANCE: dict[str, str] = {
    # Filled only with differences that cannot matter to the product; each one says why.
}


def unexplained(differences: dict[str, tuple[object, object]]) -> dict[str, tuple[object, object]]:
    """The differences no allowance entry (a glob pattern) covers."""
    return {
        name: pair
        for name, pair in differences.items()
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in ALLOWANCE)
    }
