"""Label values of bounded cardinality: the first N distinct values keep their name, later ones share ``_other``.

A Prometheus series per organisation is fine for tens or hundreds of tenants and ruinous for a million; a bound
keeps a scrape cheap whatever the data. The first values seen win, per process (replicas may differ at the margin).
"""

from __future__ import annotations

OTHER = "_other"


class BoundedLabel:
    """Maps raw values to label values, at most ``limit`` distinct ones besides ``_other`` (0: always ``_other``)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._known: set[str] = set()

    def __call__(self, value: str | None) -> str:
        """The label value for ``value`` (None or empty: ``""``)."""
        if not value:
            return ""
        if value in self._known:
            return value
        if len(self._known) < self._limit:
            self._known.add(value)  # a race between threads can only overshoot the bound by a few
            return value
        return OTHER
