"""Composition root of the agent service: the livekit-agents ``AgentServer`` and its job entrypoint.

Settings are passed to the job executors explicitly (``functools.partial`` pickles them into each job
process), so nothing in a job reads the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import cast

import structlog
from livekit.agents import AgentServer, JobContext, JobExecutorType, JobProcess

from contracts.endings import EndCode
from contracts.providers import ProviderChoice
from services.agent.custom_agent import AgentFactory, load_agent_factory
from services.agent.draining import LOCAL_JOBS, drain_timeout_reason, end_jobs_on_drain_signal, signal_job_processes
from services.agent.ending import failed_readiness, job_end, presence_reporter, report_job_end, stay_with_user
from services.agent.flow_client import FlowInitPolicy
from services.agent.job_trace import traced_job
from services.agent.metadata import salvage_ids
from services.agent.metrics import unwatch_worker, watch_worker
from services.agent.readiness import ReadinessOptions, run_readiness
from services.agent.room import AgentRoom, create_room
from services.agent.settings import AgentSettings
from services.agent.shared_io import SharedIO, close_shared_io, shared_io
from services.agent.speech_models import Defaults, ProviderError, build_models
from services.agent.voice import PlayingRoom, SimulatedVoice, Voice
from services.runtime import tracing
from services.runtime.heap import freeze_start_up_heap
from services.runtime.logging import configure_logging

log = structlog.get_logger(__name__)

REGISTER_TIMEOUT_SECONDS = 30.0
CLOSE_TIMEOUT_SECONDS = 20.0


def prepare_process(settings: AgentSettings, proc: JobProcess) -> None:
    """Set-up of each job executor (prewarm): logging, the default TTS (loaded, so a job only builds what its flow
    names) and the AGENT_FACTORY. The broker and HTTP clients are the process's (services.agent.shared_io)."""
    if proc.executor_type is JobExecutorType.PROCESS:
        configure_logging("agent", settings.log_level, settings.log_json)
        end_jobs_on_drain_signal(drain_timeout_reason(settings.agent_drain_timeout_seconds))
    tracing.configure("agent")  # in each job process: spans are exported from where they are made
    try:
        build_models(ProviderChoice(), speech_defaults(settings))
        if settings.agent_factory:
            proc.userdata["agent_factory"] = load_agent_factory(settings.agent_factory)
    except ProviderError as exc:  # reported by every job as a failure at stage "providers"
        log.error("provider_setup_failed", error=str(exc))
        proc.userdata["setup_error"] = exc


def process_clients(settings: AgentSettings) -> SharedIO:
    """The worker process's Redis publisher and flow-init HTTP client, shared by its jobs (made on first use)."""
    return shared_io(
        settings.redis_url,
        api_url=settings.api_internal_url,
        http_timeout_s=settings.agent_stage_timeout_seconds,
        flow_policy=flow_policy(settings),
    )


def speech_defaults(settings: AgentSettings) -> Defaults:
    """The service's TTS and voice for flows that name none."""
    return Defaults(
        tts=settings.tts_name, voice=settings.agent_voice, silence_ms_per_char=settings.agent_speak_ms_per_char
    )


def create_voice(settings: AgentSettings, ctx: JobContext, room: AgentRoom) -> Voice:
    """The job's voice: an AgentSession in a LiveKit room, a simulated one on the simulator's room bus."""
    setup_error = cast(ProviderError | None, ctx.proc.userdata.get("setup_error"))
    if settings.agent_room_backend == "simulator":
        return SimulatedVoice(cast(PlayingRoom, room), speech_defaults(settings), setup_error)
    from services.agent.voice_session import SessionVoice

    factory = cast(AgentFactory | None, ctx.proc.userdata.get("agent_factory"))
    defaults, timeout_s = speech_defaults(settings), settings.agent_stage_timeout_seconds
    return SessionVoice(ctx.room, defaults, factory, timeout_s=timeout_s, setup_error=setup_error)


def readiness_options(settings: AgentSettings) -> ReadinessOptions:
    """The pipeline's knobs from the service settings."""
    return ReadinessOptions(
        wait_for_user=settings.agent_wait_for_user,
        user_wait_seconds=settings.agent_user_wait_seconds,
        listener_wait_seconds=settings.agent_listener_wait_seconds,
        stage_timeout_seconds=settings.agent_stage_timeout_seconds,
        greeting_timeout_seconds=settings.agent_greeting_timeout_seconds,
        flow_init_timeout_seconds=settings.agent_flow_init_max_seconds + settings.agent_stage_timeout_seconds,
    )


def flow_policy(settings: AgentSettings) -> FlowInitPolicy:
    """Bounds of the flow-init retries from the service settings."""
    return FlowInitPolicy(
        attempts=settings.agent_flow_init_attempts,
        max_seconds=settings.agent_flow_init_max_seconds,
        initial_backoff_s=settings.agent_flow_init_backoff_seconds,
    )


async def run_job(settings: AgentSettings, ctx: JobContext) -> None:
    """Entrypoint of one dispatched job: readiness, then stay while the user is there, then end the job and say
    why on the broker (``agent.job_ended``), whatever ended it: the user, the room, a shutdown or an error."""
    LOCAL_JOBS.add(ctx.job.id)  # a drain that times out ends this job at once, saying why
    clients = process_clients(settings)
    if ctx.proc.executor_type is JobExecutorType.PROCESS:  # the process serves this one job
        ctx.add_shutdown_callback(clients.aclose)
    publisher = clients.publisher
    room = create_room(settings, ctx)  # never ctx.connect() here: the simulator room has no WebRTC
    voice = create_voice(settings, ctx, room)
    ready = False  # whether this job made the session ready: an end before that fails the session
    end = job_end(EndCode.AGENT_CRASHED, "the job stopped before readiness finished", was_ready=False)
    initialise_flow = clients.initialise_flow if settings.api_internal_url else None
    try:
        outcome = await run_readiness(
            job_id=ctx.job.id,
            raw_metadata=ctx.job.metadata,
            room=room,
            publisher=publisher,
            voice=voice,
            options=readiness_options(settings),
            initialise_flow=initialise_flow,
            flow_events=publisher,  # stage/flow/error events for watchers (relayed by the dispatcher)
            flow_watched=publisher.room_watched,  # ... only for rooms that have one
        )
        end = failed_readiness(outcome.failed_stage, outcome.reason)
        ready = outcome.ready
        if outcome.ready and outcome.session is not None:  # the conversation runs until the user is gone
            end = await stay_with_user(
                room,
                outcome.user_identity,
                user_wait_s=settings.agent_user_wait_seconds,
                rejoin_grace_s=settings.agent_user_rejoin_grace_seconds,
                user_seen=presence_reporter(publisher, outcome.session),
            )
    except asyncio.CancelledError:
        why = LOCAL_JOBS.end_reason(ctx.job.id) or "the job was shut down"
        end = job_end(EndCode.AGENT_JOB_ENDED, why, was_ready=ready)
        raise
    except Exception as exc:
        end = job_end(EndCode.AGENT_CRASHED, type(exc).__name__, was_ready=ready)
        raise
    finally:
        LOCAL_JOBS.discard(ctx.job.id)
        await voice.aclose()
        await room.disconnect()
        session_id, correlation_id = salvage_ids(ctx.job.metadata)
        if session_id:
            await report_job_end(publisher, session_id, correlation_id, ctx.job.id, end)
        ctx.shutdown(end.reason)


def job_count_load(max_jobs: int) -> Callable[[AgentServer], float]:
    """A load function: running jobs / ``max_jobs`` (capped at 1), instead of the machine's CPU use."""

    def load(server: AgentServer) -> float:
        return min(len(server.active_jobs) / max_jobs, 1.0)

    return load


def job_modules(settings: AgentSettings) -> list[str]:
    """Our modules a job process imports: with the process executor, livekit-agents' forkserver imports them once
    and every job process inherits them (each imported them anew before: ~0.4 s of CPU per job)."""
    if settings.agent_room_backend == "simulator":
        return [__name__, "services.agent.room_simulator"]
    return [__name__, "services.agent.room_livekit", "services.agent.voice_session"]


def build_server(settings: AgentSettings) -> AgentServer:
    """Build (without starting) the worker that takes explicit dispatches for LIVEKIT_AGENT_NAME."""
    server = AgentServer(
        job_executor_type=JobExecutorType(settings.agent_job_executor),
        load_threshold=settings.agent_load_threshold,
        load_fnc=job_count_load(settings.agent_max_jobs) if settings.agent_max_jobs else None,
        num_idle_processes=settings.agent_num_idle_processes,
        drain_timeout=settings.agent_drain_timeout_seconds,
        ws_url=settings.livekit_ws_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        host=settings.agent_http_host,  # livekit-agents' default '' is every interface
        port=settings.agent_http_port,
        setup_fnc=functools.partial(prepare_process, settings),
        preload_modules=job_modules(settings),  # used by the process executor's forkserver only
    )
    job = functools.partial(traced_job, functools.partial(run_job, settings))
    server.rtc_session(job, agent_name=settings.livekit_agent_name)
    return server


@dataclass
class RunningWorker:
    """A started, registered worker and the task running it (done when the worker stopped)."""

    server: AgentServer
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_worker(settings: AgentSettings) -> AsyncIterator[RunningWorker]:
    """Run the worker in this event loop until the block exits; enter only once it is registered."""
    if settings.agent_room_backend == "livekit" and settings.agent_job_executor == "thread":
        from services.agent.room_livekit import start_rtc_client

        start_rtc_client()  # before job threads race to create it
    server = build_server(settings)
    registered = asyncio.Event()
    server.on("worker_registered", lambda *_: registered.set())
    metrics = watch_worker(server, registered, settings)
    run = asyncio.create_task(server.run(devmode=settings.dev_mode), name="agent-worker")
    try:
        async with asyncio.timeout(REGISTER_TIMEOUT_SECONDS):
            waiter = asyncio.create_task(registered.wait())
            await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        if run.done():
            run.result()  # re-raise why the worker stopped
            raise RuntimeError("the agent worker stopped before registering")
        log.info("worker_registered", worker_id=server.id, agent_name=settings.livekit_agent_name)
        yield RunningWorker(server, run)
    finally:
        try:  # bounded: a job thread that never acknowledges its shutdown must not hang the process
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await server.aclose()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
        except TimeoutError:
            log.warning("worker_close_timed_out", timeout_s=CLOSE_TIMEOUT_SECONDS)
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
        finally:
            unwatch_worker(metrics)
            await close_shared_io()  # the jobs are done: the clients they shared go


async def serve(settings: AgentSettings, stop: asyncio.Event, *, freeze_heap: bool = False) -> None:
    """Run the worker until ``stop`` is set, then drain running jobs (bounded) and shut down.

    Raises if the worker stops on its own (e.g. it cannot reach the server after its retries). ``freeze_heap`` (the
    process's entrypoint): once the worker runs, its start-up heap leaves the collector's view (services.runtime.heap).
    """
    async with running_worker(settings) as worker:
        if freeze_heap:
            log.info("start_up_heap_frozen", objects=freeze_start_up_heap())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({worker.task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if worker.task.done():
            worker.task.result()
            raise RuntimeError("the agent worker stopped unexpectedly")
        log.info("worker_draining", timeout_s=settings.agent_drain_timeout_seconds)
        try:
            await worker.server.drain(timeout=settings.agent_drain_timeout_seconds)
        except TimeoutError:
            # Sessions still running: end them now, saying why, rather than after livekit-agents' own wait.
            why = drain_timeout_reason(settings.agent_drain_timeout_seconds)
            ended = LOCAL_JOBS.end_all(why) + signal_job_processes(worker.server)
            log.warning("worker_drain_timed_out", timeout_s=settings.agent_drain_timeout_seconds, jobs_ended=ended)
