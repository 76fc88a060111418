"""How each use runs the stack, as data: ``dev``, ``demo``, ``bench``, ``e2e`` and ``fault`` (see devstack.stack).

Every profile starts from COMMON_ENV (dev credentials, the simulator's rooms, no CPU-bound agent executors);
each differs only where its use needs it, and says why next to the value. Env values may name ``{api_port}``
and ``{sim_port}``: the ports the stack gets. Adjust one with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from devstack.processes import RestartPolicy

Output = Literal["console", "log_file", "log_dir", "memory"]  # labelled console, one file, a file each, a deque

COMMON_ENV: Mapping[str, str] = {
    "DEV_MODE": "true",
    "AGENT_JOB_EXECUTOR": "thread",
    "AGENT_WAIT_FOR_USER": "false",  # nobody joins the rooms (curl, tests, benchmark): "ready" without a user
    "AGENT_HTTP_PORT": "0",
    "API_HOST": "127.0.0.1",
    "PYTHONUNBUFFERED": "1",
}


@dataclass(frozen=True)
class SimulatorOptions:
    """Command-line options of ``python -m devstack.livekit_sim`` (None: the simulator's default)."""

    job_delay_ms: int | None = None
    fixed_worker_load: float | None = None
    empty_timeout_s: int | None = None
    log_level: str | None = None
    auto_create: bool = False  # as the deploy files' and make dev's livekit-server: a late join cannot re-create a room

    def argv(self, host: str, port: int) -> list[str]:
        """The simulator's options, listening on ``host:port``."""
        argv = ["--host", host, "--port", str(port)]
        for option, value in (
            ("--job-delay-ms", self.job_delay_ms),
            ("--fixed-worker-load", self.fixed_worker_load),
            ("--empty-timeout", self.empty_timeout_s),
            ("--log-level", self.log_level),
        ):
            if value is not None:
                argv += [option, str(value)]
        return argv if self.auto_create else [*argv, "--no-auto-create"]


@dataclass(frozen=True)
class Profile:
    """One use of the stack: its environment, replicas, simulator, output and supervision."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    environ_wins: bool = False  # the user's own variables beat the profile's (a developer tunes ``make dev``)
    pinned: Mapping[str, str] = field(default_factory=dict)  # beat even the user's variables
    replicas: int = 1  # processes of each stream consumer (session_store, dispatcher, webhooks), one group
    simulator: SimulatorOptions = SimulatorOptions()
    external_livekit: bool = False  # LIVEKIT_URL in the environment replaces the simulator
    discover_livekit: bool = False  # LIVEKIT_URL, else a livekit-server binary (PATH, cache), else the simulator
    api_port: int | None = None  # None: a free port
    sim_port: int | None = None
    log_level: str | None = None  # LOG_LEVEL of the services; None: theirs
    output: Output = "memory"
    memory_lines: int = 2000
    restart: RestartPolicy | None = None  # None: the first exit ends the stack
    stop_timeout_s: float = 10.0
    org: str = "dev"  # the API key's organisation; ``{api_port}`` / ``{unique}`` are filled in
    demo_page: bool = False  # a demo flow and a publishable key for /demo (DEV_PUBLISHABLE_KEY, DEV_DEMO_FLOW_ID)


DEV = Profile(
    "dev",
    env={
        "AGENT_LOAD_THRESHOLD": "inf",  # a laptop's CPU load must not make the only worker refuse jobs
        # ... nor must it make LiveKit skip the worker: the server offers no job to a worker at load >= 0.7, so
        # the load is the job count (load = jobs / 20), not the CPU
        "AGENT_MAX_JOBS": "20",
        "LOG_JSON": "false",  # children write to a pipe, which would otherwise mean JSON
    },
    environ_wins=True,
    external_livekit=True,
    discover_livekit=True,  # the real livekit-server when there is one (make dev builds it with Go), with WebRTC
    api_port=8000,
    sim_port=7880,  # LiveKit's own port: a frontend configured for a local LiveKit finds the simulator
    output="console",
    restart=RestartPolicy(),  # like the deploy files' ``restart: unless-stopped``: DEV_REPLICAS=2 shows fail-over
    demo_page=True,  # /demo with a dev publishable key, never the secret one
)


def demo_stack_env(concurrency: int) -> dict[str, str]:
    """What the demo needs from a stack besides dev's: capacity for ``concurrency`` frontends at once.

    The agent's load counts jobs against a capacity instead of the laptop's CPU (which the whole stack
    shares), executors are prewarmed for a burst (livekit-agents answers availability only once it has one),
    and the organisation may hold every session the frontends keep open.
    """
    capacity = str(max(100, 4 * concurrency))
    return {
        "AGENT_WAIT_FOR_USER": "true",
        "AGENT_MAX_JOBS": capacity,
        "AGENT_NUM_IDLE_PROCESSES": str(min(concurrency, 25)),  # a burst is accepted without spawning first
        "MAX_OPEN_SESSIONS_PER_ORG": capacity,
    }


def demo(concurrency: int) -> Profile:
    """dev, sized for ``concurrency`` frontends, with the agent waiting for the user (the real protocol)."""
    return Profile(
        "demo",
        env={**DEV.env, **demo_stack_env(concurrency)},
        environ_wins=True,
        pinned={"AGENT_WAIT_FOR_USER": "true"},  # the frontends join: what is measured is the readiness protocol
        external_livekit=True,
        discover_livekit=True,
        sim_port=DEV.sim_port,
        output="log_file",  # the demo's progress bar owns the terminal
        restart=RestartPolicy(),
        stop_timeout_s=30.0,  # a thousand open rooms take a while to close
    )


E2E = Profile(
    "e2e",
    env={
        "LIVEKIT_AGENT_NAME": "agentready-e2e-{sim_port}",  # stacks of one run never take each other's jobs
        "AGENT_LOAD_THRESHOLD": "inf",  # CPU load of a busy test machine must not make the worker refuse jobs
        "AGENT_MAX_JOBS": "50",  # ... nor LiveKit skip it (no offers at load >= 0.7): load = jobs / 50
        "LOG_JSON": "true",
    },
    org="e2e-{unique}",
)

FAULT_CLAIM_IDLE_S = 2.0
FAULT_MAX_DELIVERIES = 5
FAULT = Profile(
    "fault",
    env={
        "LIVEKIT_AGENT_NAME": "agentready-fault-{api_port}",
        "AGENT_LOAD_THRESHOLD": "0.9",  # a worker near its capacity refuses, as in production (jobs are capped too)
        "AGENT_USER_WAIT_SECONDS": "0.5",  # nobody joins these rooms: free each job's executor soon after ready
        "AGENT_NUM_IDLE_PROCESSES": "16",
        # Capacity in jobs, so a burst is refused (and re-dispatched by the watchdog) instead of piling up
        # hundreds of jobs waiting for executors inside one worker.
        "AGENT_MAX_JOBS": "60",
        "DISPATCH_JOIN_TIMEOUT_S": "10",
        "DISPATCH_MAX_ATTEMPTS": "6",
        # Pacing: at most 25 sessions wait for their agent, so a backlog released by a fault reaches the worker
        # no faster than it frees jobs (unpaced, refused waves needed up to 6 join timeouts: ~60 s).
        "DISPATCH_MAX_WAITING": "25",
        "DISPATCH_MAX_PACING_WAIT_S": "10",  # below DELIVERY_HANDLER_TIMEOUT_S
        "READY_TIMEOUT_S": "120",  # a delay caused by the fault must not read as an expiry
        "MAX_OPEN_SESSIONS_PER_ORG": "1000000",  # "ready" sessions stay open: no admission cap in this test
        "DELIVERY_CLAIM_IDLE_S": str(FAULT_CLAIM_IDLE_S),  # short, so takeovers happen within the test's bounds
        "DELIVERY_MAX_DELIVERIES": str(FAULT_MAX_DELIVERIES),
        "DELIVERY_POLLING_MS": "200",
        "DELIVERY_HANDLER_TIMEOUT_S": "20",  # a handler hung by the fault is retried within the test's bound
        "LOG_JSON": "true",
    },
    replicas=2,  # a killed replica's messages are taken over by the other one
    log_level="WARNING",
    memory_lines=400,
    org="fault-{api_port}",
)  # no restart policy: the fault suite kills processes on purpose and starts them again itself

BENCH_AGENT_NAME = "agentready-bench"
BENCH = Profile(
    "bench",
    env={
        "LIVEKIT_AGENT_NAME": BENCH_AGENT_NAME,
        # The worker takes at most 80 jobs at once and refuses more (the simulator, like LiveKit, drops a refused
        # job); the dispatcher keeps at most 50 sessions waiting for their agent, so a backlog waits in the stream
        # instead of piling onto one worker (unpaced, it stopped taking jobs: 4 of 3,000 ready) or turning into
        # refused jobs and re-dispatches. 0.99: the load is the job count (fixed worker load), not the CPU.
        "AGENT_LOAD_THRESHOLD": "0.99",
        "AGENT_MAX_JOBS": "80",
        "AGENT_NUM_IDLE_PROCESSES": "16",
        "DISPATCH_JOIN_TIMEOUT_S": "10",  # a saturated worker's dropped jobs are re-dispatched until the deadline
        "DISPATCH_MAX_WAITING": "50",
        "AGENT_SPEAK_MS_PER_CHAR": "0",  # the agent's whole start-up time is the simulator's job delay
        # The benchmark's frontends never join their rooms: each job ends soon after ready instead of holding
        # its executor 30 s for a user who never comes (a production fleet holds jobs on many machines).
        "AGENT_USER_WAIT_SECONDS": "0.5",
        "MAX_OPEN_SESSIONS_PER_ORG": "1000000",  # no admission cap in the way of a burst
        "LOG_JSON": "true",
    },
    # the agent's start-up delay is the benchmark's (set per run); rooms nobody joined close after 20 s
    simulator=SimulatorOptions(fixed_worker_load=0, empty_timeout_s=20, log_level="WARNING"),
    log_level="INFO",
    output="log_dir",  # one file per process, written by the child itself: no launcher CPU in the measurement
    stop_timeout_s=15.0,
    org="bench",
)
