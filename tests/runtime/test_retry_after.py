"""The Retry-After reader: seconds in, None for what a client should not wait on."""

from __future__ import annotations

import pytest

from services.runtime.retry_after import retry_after_seconds


@pytest.mark.parametrize(("header", "seconds"), [("0", 0.0), ("1", 1.0), ("120", 120.0), ("1.5", 1.5), (" 2 ", 2.0)])
def test_seconds(header: str, seconds: float) -> None:
    assert retry_after_seconds(header) == seconds


@pytest.mark.parametrize("header", ["-1", "-0.5"])
def test_a_negative_delay_means_now(header: str) -> None:
    assert retry_after_seconds(header) == 0.0


@pytest.mark.parametrize("header", [None, "", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_absent_or_an_http_date_is_not_waited_for(header: str | None) -> None:
    assert retry_after_seconds(header) is None


@pytest.mark.parametrize("header", ["soon", "5s", "1,5", "inf", "-inf", "nan"])
def test_garbage_is_not_waited_for(header: str) -> None:
    assert retry_after_seconds(header) is None
