"""Webhooks as ``livekit-server`` sends them: each event a protobuf ``WebhookEvent`` as JSON, POSTed to every
configured URL with ``Authorization: <JWT>`` signed by the API key/secret, whose ``sha256`` claim is the body's
hash (valid 5 minutes); ``Content-Type: application/webhook+json``. Events go out in order, one at a time per URL,
each retried a bounded number of times (a receiver that stays down loses them, as with the real server).

Sent: ``room_started``, ``participant_joined``, ``participant_left`` (also for everyone still in a room that closes)
and ``room_finished``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from datetime import timedelta

import aiohttp
import structlog
from google.protobuf.json_format import MessageToJson
from livekit import api
from livekit.protocol import models, webhook

from .state import Participant, Room, new_id

log = structlog.get_logger("livekit_sim.webhooks")

TOKEN_TTL = timedelta(minutes=5)
ATTEMPTS = 3
REQUEST_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 5.0


def sign(body: str, api_key: str, api_secret: str) -> str:
    """The ``Authorization`` value for ``body``: a JWT whose ``sha256`` claim is the body's base64 SHA-256."""
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(api_key, api_secret).with_sha256(digest).with_ttl(TOKEN_TTL).to_jwt()


def encode(event: str, room: models.Room, participant: models.ParticipantInfo | None = None) -> str:
    """The JSON body of one webhook (protojson field names, as the server marshals it)."""
    message = webhook.WebhookEvent(event=event, id=new_id("EV_"), created_at=int(time.time()))
    message.room.CopyFrom(room)
    if participant is not None:
        message.participant.CopyFrom(participant)
    return MessageToJson(message, indent=None)


class WebhookSender:
    """Queues webhooks from the simulator's state changes and POSTs them, in order, to each URL."""

    def __init__(self, urls: list[str], api_key: str, api_secret: str) -> None:
        self._urls = list(urls)
        self._key, self._secret = api_key, api_secret
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def observe(self, event: str, room: Room, participant: Participant | None) -> None:
        """The state's hook (synchronous, no I/O): queue the webhook(s) for this change."""
        if event == "room_finished":  # the server removes everyone still there first
            for remaining in list(room.participants.values()):
                self._queue.put_nowait(encode("participant_left", room.to_proto(), remaining.to_proto()))
        self._queue.put_nowait(encode(event, room.to_proto(), participant.to_proto() if participant else None))

    def start(self) -> None:
        """Start sending (in the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-webhooks")

    async def aclose(self) -> None:
        """Send what is queued (bounded), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                body = await self._queue.get()
                try:
                    for url in self._urls:
                        await self._post(session, url, body)
                finally:
                    self._queue.task_done()

    async def _post(self, session: aiohttp.ClientSession, url: str, body: str) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            headers = {"Authorization": sign(body, self._key, self._secret), "Content-Type": "application/webhook+json"}
            try:
                async with session.post(url, data=body.encode(), headers=headers) as response:
                    if response.status < 500:
                        self.sent += 1
                        if response.status >= 400:
                            log.warning("webhook refused", url=url, status=response.status)
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("webhook failed", url=url, attempt=attempt, error=str(exc))
            await asyncio.sleep(0.2 * attempt)
        self.failed += 1
        log.error("webhook dropped", url=url, attempts=ATTEMPTS)
