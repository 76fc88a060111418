"""Dispatch de-duplication: a session gets exactly one agent, however often its request is delivered.

LiveKit's ``CreateDispatch`` is not de-duplicated (every call adds another agent to the room), and a request can be
delivered twice (redelivery after a crash, XAUTOCLAIM) or to two replicas at once. Three layers keep it to one:

1. the room's lock (:mod:`services.dispatcher.room_locks`), held by :func:`~services.dispatcher.dispatching.
   dispatch_and_announce` around everything below, so two replicas never both see "no dispatch yet";
2. the session ledger's state (:class:`~services.dispatcher.dispatch_state.DispatchState`): a closed session is never
   dispatched again, and only a ``requested`` session arms the watchdog;
3. :func:`ensure_single_dispatch`: list the room's dispatches of our agent before creating one. Only the very first
   try of a session (the ledger counts tries under the lock) skips the list: nothing of ours can be there yet, and it
   makes the room with the agent in it (``LiveKitRooms.create_room_and_dispatch``), which LiveKit dispatches only as
   it makes the room: a repeated call adds no second agent.
"""

from __future__ import annotations

from services.dispatcher.ports import LiveKitRooms


async def ensure_single_dispatch(rooms: LiveKitRooms, room_name: str, metadata: str) -> str:
    """Return the id of the room's dispatch of our agent, creating one only when there is none."""
    existing = await rooms.our_dispatches(room_name)
    if existing:
        return existing[0]
    return await rooms.create_dispatch(room_name, metadata)
