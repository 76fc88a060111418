"""Freezing the start-up heap: what is alive moves out of the collector's view, and is still freed by reference
counting once released."""

from __future__ import annotations

import gc
import weakref

from services.runtime.heap import freeze_start_up_heap


class Thing:
    """A tracked object that can be weakly referenced."""


def test_the_heap_alive_at_start_up_is_frozen_and_what_is_released_is_still_freed() -> None:
    thing = Thing()
    gone = weakref.ref(thing)
    try:
        frozen = freeze_start_up_heap()
        assert frozen == gc.get_freeze_count() > 1000
        assert gc.is_tracked(thing)
        del thing  # frozen objects are still freed by reference counting
        assert gone() is None
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
