"""A process that used livekit.rtc leaves with its own exit code, skipping the finalisation its runtime can abort."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROGRAM = """
import sys
from devstack.rtc_exit import exit_now_if_rtc_ran
if sys.argv[1] == "rtc":
    from livekit.rtc._ffi_client import FfiClient
    FfiClient.instance  # what every livekit.rtc object that talks to the native runtime does first
exit_now_if_rtc_ran(7)
print("returned")
sys.exit(3)
"""


@pytest.mark.parametrize(("used", "code", "returned"), [("rtc", 7, False), ("plain", 3, True)])
def test_exit_code_is_kept_and_finalisation_skipped_only_after_rtc(used: str, code: int, returned: bool) -> None:
    done = subprocess.run([sys.executable, "-c", _PROGRAM, used], capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert ("returned" in done.stdout) is returned
