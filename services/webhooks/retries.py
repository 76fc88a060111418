"""When a failed delivery is tried again: bounded exponential backoff with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` attempts; after the n-th failure wait base * factor**(n-1), capped, varied by ``jitter``.

    The defaults (5 attempts; 5 s, 20 s, 80 s, 320 s) give up about seven minutes after the first attempt.
    """

    max_attempts: int = 5
    base_s: float = 5.0
    factor: float = 4.0
    max_s: float = 900.0
    jitter: float = 0.2

    def delay_after(self, attempts: int, rng: random.Random | None = None) -> float | None:
        """Seconds to wait after ``attempts`` failed attempts; None when that was the last one allowed."""
        if attempts >= self.max_attempts:
            return None
        delay = min(self.max_s, self.base_s * self.factor ** max(0, attempts - 1))
        spread = delay * self.jitter
        return max(0.0, delay + (rng or random).uniform(-spread, spread))
