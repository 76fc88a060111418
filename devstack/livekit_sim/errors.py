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

    def __init__(self, code: str, msg: str, status: int | None = None, meta: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status if status is not None else TWIRP_STATUS.get(code, 500)
        self.meta = meta or {}

    def body(self) -> bytes:
        """The JSON error body (Twirp encodes errors as JSON whatever the request's content type)."""
        body: dict[str, object] = {"code": self.code, "msg": self.msg}
        if self.meta:
            body["meta"] = self.meta
        return json.dumps(body).encode()


def psrpc_error(code: str, msg: str) -> TwirpError:
    """An error from the server's internal RPC layer (psrpc): Twirp sees a wrapped error, so its message gets
    twirp's ``"twirp error unknown: "`` prefix while the code is kept."""
    return TwirpError(code, f"twirp error unknown: {msg}")


def invalid_argument(argument: str, limit: int) -> TwirpError:
    """``twirp.InvalidArgumentError(argument, limit)``: message ``"<argument> <limit>"``, meta ``argument``."""
    return TwirpError("invalid_argument", f"{argument} {limit}", meta={"argument": argument})


def permission_denied() -> TwirpError:
    """What the server answers when a grant is missing: ``twirpAuthError`` wraps it as *unauthenticated*."""
    return TwirpError("unauthenticated", "permissions denied")


def room_not_found() -> TwirpError:
    """``ErrRoomNotFound``."""
    return psrpc_error("not_found", "requested room does not exist")


def no_room_server() -> TwirpError:
    """A room-topic RPC (dispatch, SendData) for a room no node hosts: psrpc's ``ErrNoResponse``."""
    return psrpc_error("unavailable", "no response from servers")
