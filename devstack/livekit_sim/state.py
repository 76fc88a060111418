"""The simulated server's memory: rooms, participants, dispatches, workers and jobs. Plain data, no I/O."""

from __future__ import annotations

import random
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from livekit.protocol import agent, agent_dispatch, models, room

from .auth import AGENT_NAME_ATTRIBUTE

_ALPHABET = string.ascii_letters + string.digits

# livekit-server's defaults (pkg/config/config.go: limit, room.enabled_codecs, agents.target_load)
MAX_METADATA_SIZE = 512 * 1024
MAX_ROOM_NAME_LENGTH = 256
TARGET_LOAD = 0.7  # a node is offered a job only while one of its matching workers is below this load
ENABLED_CODECS = (
    "audio/PCMU",
    "audio/PCMA",
    "audio/opus",
    "audio/red",
    "video/VP8",
    "video/H264",
    "video/VP9",
    "video/AV1",
    "video/H265",
    "video/rtx",
)
DEPENDENT_KINDS = ("agent", "egress")


def new_id(prefix: str) -> str:
    """An id shaped like the server's guids: a type prefix and 12 base62 characters."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(12))


class WorkerClosedError(Exception):
    """The worker's connection closed while the server waited for it."""


class WorkerChannel(Protocol):
    """How the job launcher talks to one registered worker (implemented over the ``/agent`` socket)."""

    async def request_availability(self, job: agent.Job, wait_seconds: float) -> agent.AvailabilityResponse | None:
        """Send an ``AvailabilityRequest``; the answer, or None after ``wait_seconds``."""
        ...

    async def send(self, message: agent.ServerMessage) -> None:
        """Send one server message."""
        ...


@dataclass
class Participant:
    """One participant connected through the room bus."""

    identity: str
    name: str = ""
    kind: str = "standard"
    metadata: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    hidden: bool = False
    can_publish_data: bool = True
    can_update_metadata: bool = False
    sid: str = field(default_factory=lambda: new_id("PA_"))
    joined_at: float = field(default_factory=time.time)

    @property
    def dependent(self) -> bool:
        """``IsDependent``: agents (and egress) do not count as participants and do not keep a room open."""
        return self.kind in DEPENDENT_KINDS

    def to_proto(self) -> models.ParticipantInfo:
        """As ``ListParticipants`` returns it."""
        kind = getattr(models.ParticipantInfo.Kind, self.kind.upper(), models.ParticipantInfo.STANDARD)
        return models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            state=models.ParticipantInfo.ACTIVE,
            metadata=self.metadata,
            joined_at=int(self.joined_at),
            joined_at_ms=int(self.joined_at * 1000),
            kind=kind,
            attributes=self.attributes,
            permission=models.ParticipantPermission(
                can_subscribe=True, can_publish=True, can_publish_data=self.can_publish_data, hidden=self.hidden
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """As the room bus describes it."""
        return {
            "identity": self.identity,
            "sid": self.sid,
            "kind": self.kind,
            "name": self.name,
            "metadata": self.metadata,
            "attributes": dict(self.attributes),
        }


@dataclass
class Room:
    """A room and what lives in it."""

    info: models.Room
    participants: dict[str, Participant] = field(default_factory=dict)
    dispatches: dict[str, agent_dispatch.AgentDispatch] = field(default_factory=dict)
    first_joined_at: float | None = None
    last_left_at: float | None = None
    agents_assigned: set[str] = field(default_factory=set)  # agent names a job of this room was ever assigned for
    live_jobs: dict[str, str] = field(default_factory=dict)  # job id -> agent name: assigned and not ended yet

    @property
    def name(self) -> str:
        """The room's name."""
        return self.info.name

    def to_proto(self) -> models.Room:
        """A copy with the live participant count."""
        out = models.Room()
        out.CopyFrom(self.info)
        out.num_participants = sum(1 for p in self.participants.values() if not p.dependent)
        return out

    def idle_expired(self, now: float) -> bool:
        """``Room.CloseIfEmpty``: only agents left, past the empty timeout (no user ever joined) or the departure
        timeout (after the last one left)."""
        if any(not p.dependent for p in self.participants.values()):
            return False
        if self.first_joined_at is not None and self.last_left_at is not None:
            return now - self.last_left_at >= self.info.departure_timeout
        return now - self.info.creation_time >= self.info.empty_timeout


@dataclass
class Worker:
    """A registered agent worker."""

    id: str
    channel: WorkerChannel
    api_key: str
    agent_name: str = ""
    namespace: str = ""
    job_type: int = agent.JT_ROOM
    deployment: str = ""
    version: str = ""
    permissions: models.ParticipantPermission = field(default_factory=models.ParticipantPermission)
    status: int = agent.WS_AVAILABLE
    load: float = 0.0
    jobs: dict[str, agent.Job] = field(default_factory=dict)

    def matches(self, job: agent.Job) -> bool:
        """Whether this worker serves the job's agent name, namespace, type and deployment."""
        return (self.agent_name, self.namespace, self.job_type, self.deployment) == (
            job.agent_name,
            job.namespace,
            job.type,
            job.deployment,
        )


@dataclass
class RoomDefaults:
    """Server ``room`` config defaults (``livekit-server`` uses 300 s and 20 s)."""

    empty_timeout: int = 300
    departure_timeout: int = 20


Observer = Callable[[str, "Room", "Participant | None"], None]
"""Told (synchronously, no I/O) of room_started / participant_joined / participant_left / room_finished."""


class SimState:
    """Everything the simulator knows; every method is synchronous and does no I/O."""

    def __init__(self, defaults: RoomDefaults | None = None) -> None:
        self.defaults = defaults or RoomDefaults()
        self.rooms: dict[str, Room] = {}
        self.workers: dict[str, Worker] = {}
        self.counters: Counter[str] = Counter()
        self.twirp_in_flight = 0
        self.observers: list[Observer] = []  # e.g. the webhook sender

    def _notify(self, event: str, target: Room, participant: Participant | None = None) -> None:
        for observer in self.observers:
            observer(event, target, participant)

    def request_started(self, method: str) -> None:
        """A Twirp request arrived: count it, by method, and keep the peak of requests in flight."""
        self.twirp_in_flight += 1
        self.counters["twirp_requests"] += 1
        self.counters[f"twirp_requests.{method}"] += 1
        self.counters["twirp_in_flight_peak"] = max(self.counters["twirp_in_flight_peak"], self.twirp_in_flight)

    def request_finished(self) -> None:
        """A Twirp request was answered (or its client went away)."""
        self.twirp_in_flight -= 1

    def get_or_create_room(self, req: room.CreateRoomRequest) -> tuple[Room, bool]:
        """``CreateRoom``: the existing room if there is one, else a new room with its agent dispatches."""
        existing = self.rooms.get(req.name)
        if existing is not None:
            # An open room is returned unchanged: metadata, timeouts and agents of the request are ignored
            # (a token's roomConfig likewise).
            return existing, False
        now = time.time()
        info = models.Room(
            sid=new_id("RM_"),
            name=req.name,
            empty_timeout=req.empty_timeout or self.defaults.empty_timeout,
            departure_timeout=req.departure_timeout or self.defaults.departure_timeout,
            max_participants=req.max_participants,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            metadata=req.metadata,
            turn_password=secrets.token_urlsafe(32),
            enabled_codecs=[models.Codec(mime=mime) for mime in ENABLED_CODECS],
        )
        created = Room(info=info)
        # With no agents configured the server adds one dispatch with an empty agent name
        # (automatic dispatch), so ListDispatch on a fresh room is never empty.
        for rad in list(req.agents) or [agent_dispatch.RoomAgentDispatch()]:
            self.add_dispatch(
                created,
                agent_dispatch.AgentDispatch(
                    id=new_id("AD_"), agent_name=rad.agent_name, room=req.name, metadata=rad.metadata
                ),
            )
        self.rooms[req.name] = created
        self.counters["rooms_created"] += 1
        self._notify("room_started", created)
        return created, True

    def pop_room(self, name: str) -> Room | None:
        """Forget a room (deleted or closed)."""
        gone = self.rooms.pop(name, None)
        if gone is not None:
            self.counters["rooms_closed"] += 1
            self._notify("room_finished", gone)
        return gone

    def add_dispatch(self, target: Room, dispatch: agent_dispatch.AgentDispatch) -> agent_dispatch.AgentDispatch:
        """Store a dispatch; an existing id is replaced (the server's store keeps one per id)."""
        dispatch.state.CopyFrom(agent_dispatch.AgentDispatchState(created_at=time.time_ns()))
        target.dispatches[dispatch.id] = dispatch
        self.counters["dispatches_created"] += 1
        return dispatch

    def join(self, target: Room, participant: Participant) -> None:
        """A participant joined (replacing any connection with the same identity); an agent joining while another
        of its agent name is connected counts as ``agents_duplicated`` (two agents for one session at once)."""
        if participant.kind == "agent" and any(
            other.kind == "agent"
            and other.identity != participant.identity
            and other.attributes.get(AGENT_NAME_ATTRIBUTE, "") == participant.attributes.get(AGENT_NAME_ATTRIBUTE, "")
            for other in target.participants.values()
        ):
            self.counters["agents_duplicated"] += 1
        target.participants[participant.identity] = participant
        if target.first_joined_at is None and not participant.dependent:  # an agent alone is not "joined"
            target.first_joined_at = participant.joined_at
        self._notify("participant_joined", target, participant)

    def leave(self, target: Room, identity: str) -> Participant | None:
        """A participant left."""
        gone = target.participants.pop(identity, None)
        if gone is not None:
            target.last_left_at = time.time()
            self._notify("participant_left", target, gone)
        return gone

    def job_assigned(self, job: agent.Job) -> None:
        """A worker took ``job``. A second job of one agent in one room is ``jobs_duplicated`` while an earlier one
        still runs (two agents at once), else ``jobs_replaced`` (the earlier ones ended: a replacement)."""
        self.counters["jobs_assigned"] += 1
        target = self.rooms.get(job.room.name)
        if target is None:
            return
        if job.agent_name in target.live_jobs.values():
            self.counters["jobs_duplicated"] += 1
        elif job.agent_name in target.agents_assigned:
            self.counters["jobs_replaced"] += 1
        target.agents_assigned.add(job.agent_name)
        target.live_jobs[job.id] = job.agent_name

    def job_ended(self, job: agent.Job) -> None:
        """The server no longer runs ``job``: its worker ended it, the server terminated it, or its worker left."""
        target = self.rooms.get(job.room.name)
        if target is not None:
            target.live_jobs.pop(job.id, None)

    def accepts_jobs(self, job: agent.Job) -> bool:
        """``JobRequestAffinity`` > 0: some available worker for this job is below the target load (0.7).
        Otherwise the node claims no job and it is dropped."""
        return any(
            w.matches(job) and w.status == agent.WS_AVAILABLE and w.load < TARGET_LOAD for w in self.workers.values()
        )

    def select_worker(self, job: agent.Job, exclude: set[str]) -> Worker | None:
        """The server's ``selectWorkerWeightedByLoad``: random, weighted by spare capacity (1 - load)."""
        weights = {
            w.id: max(0.0, 1.0 - w.load)
            for w in self.workers.values()
            if w.matches(job) and w.id not in exclude and w.status == agent.WS_AVAILABLE
        }
        total = sum(weights.values())
        if total <= 0:
            return None
        pick = random.uniform(0, total)
        for worker_id, weight in weights.items():
            pick -= weight
            if pick <= 0:
                return self.workers[worker_id]
        return self.workers[next(iter(weights))]

    def has_worker_for(self, job: agent.Job) -> bool:
        """Whether any registered worker serves this job's agent name (available or not)."""
        return any(w.matches(job) for w in self.workers.values())

    def snapshot(self) -> dict[str, Any]:
        """Counts for ``GET /sim/state``."""
        return {
            "rooms": {
                r.name: {
                    "sid": r.info.sid,
                    "participants": len(r.participants),
                    "identities": sorted(r.participants),
                    "agents": sorted(i for i, p in r.participants.items() if p.kind == "agent"),
                    "dispatches": len(r.dispatches),
                    "jobs": sum(len(d.state.jobs) for d in r.dispatches.values()),
                }
                for r in self.rooms.values()
            },
            "workers": [
                {
                    "id": w.id,
                    "agent_name": w.agent_name,
                    "status": agent.WorkerStatus.Name(w.status),
                    "load": w.load,
                    "jobs": sorted(w.jobs),
                }
                for w in self.workers.values()
            ],
            "counters": dict(self.counters),
            "twirp_in_flight": self.twirp_in_flight,
        }
