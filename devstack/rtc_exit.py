"""Leave a process that used livekit.rtc without the interpreter's finalisation.

livekit.rtc's native runtime (Rust, tokio) can call back into Python while the interpreter finalises; the Rust side
then aborts ("panic in a function that cannot unwind", exit 134) although the program's work is done. Seen at the
end of test runs where every test had passed. A process whose results are written calls this last.
"""

from __future__ import annotations

import os
import sys


def rtc_ran() -> bool:
    """True once livekit.rtc's native client was created in this process."""
    ffi = sys.modules.get("livekit.rtc._ffi_client")
    return ffi is not None and getattr(ffi.FfiClient, "_instance", None) is not None


def exit_now_if_rtc_ran(code: int) -> None:
    """Flush and leave with ``code`` at once when livekit.rtc ran here; otherwise return (exit as usual)."""
    if not rtc_ran():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
