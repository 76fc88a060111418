"""Twirp errors as the LiveKit server returns them: JSON ``{"code", "msg"}`` with the code's HTTP status."""

from __future__ import annotations

import json

# Twirp's code -> HTTP status table (github.com/twitchtv/twirp ServerHTTPStatusFromErrorCode).
TWIRP_STATUS: dict[str, int] = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}


class TwirpError(Exception):
    """An error a Twirp handler returns to the client."""

    def __init__(self, code: str, msg: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status if status is not None else TWIRP_STATUS.get(code, 500)

    def body(self) -> bytes:
        """The JSON error body (Twirp encodes errors as JSON whatever the request's content type)."""
        return json.dumps({"code": self.code, "msg": self.msg}).encode()


def permission_denied() -> TwirpError:
    """What the server answers when a grant is missing: ``twirpAuthError`` wraps it as *unauthenticated*."""
    return TwirpError("unauthenticated", "permissions denied")


def room_not_found() -> TwirpError:
    """``ErrRoomNotFound``."""
    return TwirpError("not_found", "requested room does not exist")


def no_room_server() -> TwirpError:
    """A room-topic RPC (dispatch, SendData) for a room no node hosts: psrpc's ``ErrNoResponse``."""
    return TwirpError("unavailable", "no response from servers")
