"""The status machine: forward only, terminal is final, out-of-order events still end forward."""

from __future__ import annotations

from itertools import pairwise

import pytest

from contracts.status import PROGRESSION, TERMINAL, SessionStatus, can_transition

S = SessionStatus


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (None, S.READY, True),
        (S.PENDING, S.DISPATCHED, True),
        (S.PENDING, S.READY, True),  # ready may arrive before dispatched
        (S.DISPATCHED, S.AGENT_JOINED, True),
        (S.AGENT_JOINED, S.READY, True),
        (S.READY, S.ENDED, True),
        (S.READY, S.DISPATCHED, False),  # late event never moves back
        (S.AGENT_JOINED, S.PENDING, False),
        (S.READY, S.READY, False),  # duplicate changes nothing
        (S.PENDING, S.FAILED, True),
        (S.AGENT_JOINED, S.EXPIRED, True),
        (S.PENDING, S.ENDED, True),
        (S.FAILED, S.READY, False),
        (S.EXPIRED, S.READY, False),
        (S.ENDED, S.FAILED, False),
    ],
)
def test_transitions(current: SessionStatus | None, target: SessionStatus, allowed: bool) -> None:
    assert can_transition(current, target) is allowed


def test_terminal_statuses_have_no_way_out() -> None:
    for status in TERMINAL:
        assert not any(can_transition(status, target) for target in SessionStatus)


def test_happy_path_is_the_progression() -> None:
    for earlier, later in pairwise(PROGRESSION):
        assert can_transition(earlier, later)
        assert not can_transition(later, earlier)
