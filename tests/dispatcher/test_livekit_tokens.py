"""Server API tokens are signed once per grant set and reused while fresh, and the server accepts them."""

from __future__ import annotations

import uuid
from typing import Any

from livekit import api

from devstack.livekit_sim import Simulator
from services.dispatcher.livekit_tokens import FastSigner, ReusedTokens, reuse_tokens


class Signer:
    """Counts signings; each one a different token."""

    def __init__(self) -> None:
        self.signed = 0

    def __call__(self, grants: Any = None, sip: Any = None) -> dict[str, str]:
        self.signed += 1
        return {"authorization": f"Bearer token-{self.signed}"}


def test_same_grants_reuse_a_token_until_it_is_stale() -> None:
    now = [0.0]
    sign = Signer()
    tokens = ReusedTokens(sign, reuse_s=300, clock=lambda: now[0])
    admin = api.VideoGrants(room_admin=True, room="room-a")
    first = tokens(admin)
    assert tokens(api.VideoGrants(room_admin=True, room="room-a")) == first and sign.signed == 1
    assert tokens(api.VideoGrants(room_admin=True, room="room-b")) != first  # another room, another token
    assert tokens(api.VideoGrants(room_create=True)) != first and sign.signed == 3
    now[0] = 300.0
    assert tokens(admin) != first and sign.signed == 4  # stale: signed again


def test_only_so_many_grant_sets_are_kept() -> None:
    sign = Signer()
    tokens = ReusedTokens(sign, max_entries=2)
    for room in ("a", "b", "c"):
        tokens(api.VideoGrants(room_admin=True, room=room))
    tokens(api.VideoGrants(room_admin=True, room="a"))  # the oldest was dropped
    assert sign.signed == 4


def _claims(header: dict[str, str]) -> dict[str, Any]:
    token = header["authorization"].removeprefix("Bearer ")
    claims = api.TokenVerifier("devkey", "secret").verify(token)  # the signature checks out
    return {"identity": claims.identity, "video": claims.video, "sip": claims.sip}


def test_the_fast_signer_signs_the_claims_access_token_does() -> None:
    library = Signer()
    fast = FastSigner("devkey", "secret", library)
    for grants in (
        api.VideoGrants(room_admin=True, room="room-a"),
        api.VideoGrants(room_admin=True, room="room-b"),  # same shape, another room
        api.VideoGrants(room_create=True),
        api.VideoGrants(room_list=True),
    ):
        expected = api.AccessToken("devkey", "secret").with_grants(grants).to_jwt()
        assert _claims(fast(grants)) == _claims({"authorization": f"Bearer {expected}"})
    assert library.signed == 0
    fast(None, api.SIPGrants(admin=True))  # SIP grants: livekit-api's own signer
    assert library.signed == 1


async def test_reused_tokens_are_accepted_by_the_server(sim: Simulator) -> None:
    room = f"room-{uuid.uuid4().hex[:8]}"
    async with api.LiveKitAPI(sim.url, "devkey", "secret") as client:
        reuse_tokens(client)
        await client.room.create_room(api.CreateRoomRequest(name=room))
        await client.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name="a", room=room))
        for _ in range(2):  # the second call sends the first one's token
            assert "a" in [d.agent_name for d in await client.agent_dispatch.list_dispatch(room)]
        await client.room.delete_room(api.DeleteRoomRequest(room=room))
