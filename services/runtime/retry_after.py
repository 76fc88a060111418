"""Reading a ``Retry-After`` header: the pause a 503 asks its client to wait, in seconds.

The API sends whole seconds; an HTTP-date (the header's other form) is not waited for, nor is anything that is
not a finite number. A negative delay means "now".
"""

from __future__ import annotations

import math


def retry_after_seconds(header: str | None) -> float | None:
    """The seconds ``header`` asks to wait (at least 0); None when absent, an HTTP-date or not a finite number."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
