"""Recording livekit-api answers in a comparable form: ids and timestamps normalised, errors as data."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from livekit import api

ID = re.compile(r"^(RM|AD|AJ|PA|AW|ND|TR)_[A-Za-z0-9]{12}$")
TIMESTAMP_KEYS = {
    "creation_time",
    "creation_time_ms",
    "created_at",
    "joined_at",
    "joined_at_ms",
    "updated_at",
    "started_at",
    "ended_at",
}
SECRET_KEYS = {"turn_password"}


class Normaliser:
    """Replaces each server-made id by its type and order of first appearance (``RM_1``) and timestamps by ``<ts>``."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def __call__(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [self(v, key) for v in value]
        if key in TIMESTAMP_KEYS:
            return "<ts>" if value not in (0, "0", None) else value
        if key in SECRET_KEYS:
            return "<secret>" if value else value
        if isinstance(value, str) and ID.match(value):
            prefix = value[:2]
            count = sum(1 for v in self._ids.values() if v.startswith(prefix))
            return self._ids.setdefault(value, f"{prefix}_{count + 1}")
        return value


def as_data(message: Message | list[Any] | None) -> Any:
    """A protobuf answer (or a list of them) as plain data, every field shown (as the wire has them)."""
    if message is None:
        return None
    if isinstance(message, list):
        return [as_data(m) for m in message]
    return MessageToDict(message, preserving_proto_field_name=True)


async def observe(call: Awaitable[Any]) -> dict[str, Any]:
    """The answer of one call, or its Twirp error, as data."""
    try:
        return {"ok": as_data(await call)}
    except api.TwirpError as exc:
        return {"error": {"code": exc.code, "status": exc.status, "message": exc.message, "meta": exc.metadata}}
