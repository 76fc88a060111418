"""The readiness protocol of one agent job, as a plain async function with its dependencies passed in.

metadata -> agent.joined -> connect -> providers (the flow's STT/LLM/TTS/VAD) -> wait for user -> flow init ->
the conversation starts -> wait until someone has subscribed to the agent's audio -> greeting (playout awaited)
-> ``agent.ready`` on the data channel (topic ``agent-status``) and on the broker. Any failure -> ``agent.failed``
on the broker and, once connected, on the data channel. No livekit or redis here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from pydantic import ValidationError

from contracts.datachannel import AGENT_STATUS_TOPIC, AgentFailedPayload, AgentReadyPayload
from contracts.events import AgentFailed, AgentJoined, AgentReady, utc_now
from services.agent.flow_client import FlowConfig
from services.agent.flow_reporting import FlowReporter
from services.agent.metadata import SessionMetadata, parse_metadata, salvage_ids
from services.agent.room import AgentRoom
from services.agent.stages import StageClock, StageFailed
from services.agent.voice import Voice
from services.runtime.publishing import EventPublisher

FlowInitialiser = Callable[[SessionMetadata], Awaitable[FlowConfig]]
"""Stage "flow_init": initialise the session's flow through the API; its greeting is the one spoken."""

REPORT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ReadinessOptions:
    """Per-job knobs, taken from the service settings."""

    wait_for_user: bool = True
    user_wait_seconds: float = 30.0
    listener_wait_seconds: float = 10.0
    stage_timeout_seconds: float = 15.0
    greeting_timeout_seconds: float = 60.0
    flow_init_timeout_seconds: float = 30.0  # the flow-init retries have their own, smaller bound


@dataclass
class ReadinessOutcome:
    """How the pipeline ended: ready, or failed at ``failed_stage`` with ``reason``."""

    ready: bool
    session: SessionMetadata | None = None
    user_identity: str | None = None
    failed_stage: str | None = None
    reason: str | None = None
    stage_timings_ms: dict[str, float] = field(default_factory=dict)
    flow: FlowConfig | None = None  # once ready: the flow the conversation runs


def iso_utc(moment: datetime) -> str:
    """Format ``moment`` as ISO-8601 UTC with milliseconds and a ``Z``, like JavaScript's toISOString."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def run_readiness(
    *,
    job_id: str,
    raw_metadata: str,
    room: AgentRoom,
    publisher: EventPublisher,
    voice: Voice,
    options: ReadinessOptions,
    initialise_flow: FlowInitialiser | None = None,
    clock: Callable[[], datetime] = utc_now,
    flow_events: EventPublisher | None = None,
    flow_watched: Callable[[str], Awaitable[bool]] | None = None,
) -> ReadinessOutcome:
    """Take one job from dispatch to ``agent.ready`` (or ``agent.failed``); never raises but on cancel.

    With ``flow_events``, each stage's start and end (with its duration), the flow's initialisation, the
    spoken greeting and a failure (stage and reason) also go to the broker as flow events for watchers;
    ``flow_watched(room_name)`` limits them to rooms that have a watcher.
    """
    run = StageClock(structlog.get_logger("services.agent.readiness").bind(job_id=job_id))
    session: SessionMetadata | None = None
    flow: FlowReporter | None = None
    connected = ready_sent = False
    try:
        async with run.stage("metadata", None):
            session = parse_metadata(raw_metadata)
        run.log = run.log.bind(session_id=session.session_id, correlation_id=session.correlation_id)
        ids = {"session_id": session.session_id, "correlation_id": session.correlation_id}
        if flow_events is not None:
            flow = FlowReporter(flow_events, **ids, room_name=session.room_name, is_watched=flow_watched)
        async with _stage(run, flow, "joined", options.stage_timeout_seconds):
            await publisher.publish(AgentJoined(**ids, room_name=session.room_name, job_id=job_id))
        async with _stage(run, flow, "connect", options.stage_timeout_seconds):
            await room.connect()
            connected = True
        async with _stage(run, flow, "providers", options.stage_timeout_seconds):
            await voice.prepare(session.providers)
        user: str | None = None
        if options.wait_for_user:
            no_user = f"no user joined within {options.user_wait_seconds:g} s"
            async with _stage(run, flow, "wait_for_user", None, timeout_reason=no_user):
                user = await room.wait_for_participant(options.user_wait_seconds)
        config = FlowConfig(greeting=session.greeting)
        if initialise_flow is not None:
            async with _stage(run, flow, "flow_init", options.flow_init_timeout_seconds):
                config = await initialise_flow(session)
        greeting = config.greeting
        if flow is not None:
            flow.emit("flow", "flow.initialised", details={"flowId": session.flow_id, "greeting": greeting})
        async with _stage(run, flow, "session_start", options.stage_timeout_seconds):
            await voice.start(config, user)
        marks: dict[str, datetime] = {}
        if options.wait_for_user:  # speaking before anyone can hear loses the greeting's beginning
            no_listener = f"nobody subscribed to the agent's audio within {options.listener_wait_seconds:g} s"
            async with _stage(
                run, flow, "listener_subscribed", options.listener_wait_seconds, timeout_reason=no_listener
            ):
                await voice.wait_for_listener()
            marks["listener_subscribed_at"] = clock()

        def greeting_started() -> None:
            marks.setdefault("greeting_started_at", clock())

        async with _stage(run, flow, "greeting", options.greeting_timeout_seconds):
            await voice.say(greeting, greeting_started)
        marks["greeting_finished_at"] = clock()
        if flow is not None:
            flow.emit(
                "flow", "greeting.spoken", details={"greeting": greeting, "durationMs": run.timings_ms["greeting"]}
            )
        async with _stage(run, flow, "announce", options.stage_timeout_seconds):
            payload = AgentReadyPayload(sessionId=session.session_id, greeting=greeting, timestamp=iso_utc(clock()))
            await room.publish_data(payload.to_bytes(), topic=AGENT_STATUS_TOPIC, reliable=True)
            ready_sent = True
        timings = {**run.timings_ms, "total": run.elapsed_ms()}
        async with _stage(run, flow, "ready", options.stage_timeout_seconds):
            await publisher.publish(AgentReady(**ids, greeting=greeting, stage_timings_ms=timings, **marks))
        run.log.info("agent_ready", user=user, stage_timings_ms=timings)
        return ReadinessOutcome(True, session, user, stage_timings_ms=timings, flow=config)
    except StageFailed as failure:
        tell_room = connected and not ready_sent
        _flow_failure(flow, failure)
        await _report_failure(run, failure, raw_metadata, session, room, publisher, tell_room, clock)
        return ReadinessOutcome(False, session, None, failure.stage, failure.reason, dict(run.timings_ms))
    except asyncio.CancelledError:
        cancelled = StageFailed(run.current, "job cancelled (the worker or the room is shutting down)")
        tell_room = connected and not ready_sent
        _flow_failure(flow, cancelled)
        await _report_failure(run, cancelled, raw_metadata, session, room, publisher, tell_room, clock)
        raise
    finally:
        if flow is not None:
            await flow.aclose()


@asynccontextmanager
async def _stage(
    run: StageClock, flow: FlowReporter | None, name: str, deadline: float | None, *, timeout_reason: str = ""
) -> AsyncIterator[None]:
    """``run.stage``, announced to watchers when it starts and when it finishes (with its duration)."""
    if flow is not None:
        flow.emit("stage", "stage.started", {"stage": name})
    async with run.stage(name, deadline, timeout_reason=timeout_reason):
        yield
    if flow is not None:
        flow.emit("stage", "stage.finished", {"stage": name, "durationMs": run.timings_ms[name]})


def _flow_failure(flow: FlowReporter | None, failure: StageFailed) -> None:
    """Tell watchers which stage failed; only admins see why."""
    if flow is not None:
        flow.emit("error", "stage.failed", {"stage": failure.stage}, error={"reason": failure.reason})


async def _report_failure(
    run: StageClock,
    failure: StageFailed,
    raw_metadata: str,
    session: SessionMetadata | None,
    room: AgentRoom,
    publisher: EventPublisher,
    tell_room: bool,
    clock: Callable[[], datetime],
) -> None:
    """Tell the frontend (if the room is joined) and the broker; a report that fails is logged, not raised."""
    run.log.error("agent_failed", stage=failure.stage, reason=failure.reason, stage_timings_ms=run.timings_ms)
    session_id, correlation_id = (
        (session.session_id, session.correlation_id) if session is not None else salvage_ids(raw_metadata)
    )
    try:
        event = AgentFailed(
            session_id=session_id or "",
            stage=failure.stage,
            reason=failure.reason,
            **({"correlation_id": correlation_id} if correlation_id else {}),
        )
    except ValidationError:
        run.log.error("agent_failed_unreported", why="the job metadata carries no valid sessionId")
        return
    if tell_room:
        payload = AgentFailedPayload(
            sessionId=event.session_id, stage=failure.stage, reason=failure.reason, timestamp=iso_utc(clock())
        )
        await _best_effort(run, "report_room", room.publish_data(payload.to_bytes(), topic=AGENT_STATUS_TOPIC))
    await _best_effort(run, "report_broker", publisher.publish(event))


async def _best_effort(run: StageClock, what: str, action: Awaitable[None]) -> None:
    """Await ``action`` within REPORT_TIMEOUT_SECONDS; log (never raise) if it fails."""
    try:
        async with asyncio.timeout(REPORT_TIMEOUT_SECONDS):
            await action
    except Exception as exc:  # noqa: BLE001 - a failed failure report must not hide the original failure
        run.log.error("failure_report_failed", target=what, error=f"{type(exc).__name__}: {exc}")
