"""A cap on each organisation's open SSE streams in one API process: every stream holds a slot until it ends.

Counted in the process, not in Redis: what a stream costs (a connection, a task, a queue) is this process's, and a
count kept here always goes back down, however the stream ended (a crashed replica cannot leak slots elsewhere).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from services.api.session_core import OverCapacityError


class Slot:
    """One open stream's place in its organisation's count; :meth:`release` gives it back (once)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Give the slot back; calling it again does nothing."""
        release, self._release = self._release, None
        if release is not None:
            release()


class StreamSlots:
    """Counts open streams per organisation and refuses one over ``cap`` with 429."""

    def __init__(self, cap: int, retry_after_s: int) -> None:
        self._cap = cap
        self._retry_after_s = retry_after_s
        self._open: dict[str, int] = {}  # organisations with no open stream have no entry: the map empties

    def take(self, org_id: str) -> Slot:
        """A slot for a new stream of ``org_id``; OverCapacityError (429) when it already holds ``cap``."""
        held = self._open.get(org_id, 0)
        if held >= self._cap:
            raise OverCapacityError(
                f"this organisation already has {held} open event streams on this API server (at most {self._cap}); "
                "close streams it no longer reads, follow sessions through one stream each, or raise "
                "MAX_SSE_STREAMS_PER_ORG",
                self._retry_after_s,
            )
        self._open[org_id] = held + 1
        return Slot(lambda: self._give_back(org_id))

    def open_streams(self, org_id: str) -> int:
        """How many streams ``org_id`` holds here now."""
        return self._open.get(org_id, 0)

    def organisations(self) -> int:
        """How many organisations hold at least one stream here (0 once every stream has ended)."""
        return len(self._open)

    def _give_back(self, org_id: str) -> None:
        held = self._open.get(org_id, 0) - 1
        if held > 0:
            self._open[org_id] = held
        else:
            self._open.pop(org_id, None)


class SlotStreamingResponse(StreamingResponse):
    """A StreamingResponse that releases its slot however it ends: finished, client gone, or never started."""

    def __init__(self, content: AsyncIterator[str], slot: Slot, media_type: str, headers: Mapping[str, str]) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream, then release the slot and close the stream's generator (its own clean-up runs now, not at GC)."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()
