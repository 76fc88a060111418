"""Settings of the agent service, read from the environment (no prefix: docs/architecture.md, "Configuration")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from services.runtime.settings import LiveKitSettings


class AgentSettings(LiveKitSettings):
    """Everything the agent worker and its jobs need; one instance per process, passed explicitly."""

    agent_room_backend: Literal["livekit", "simulator"] = Field(
        default="livekit",
        description="'livekit': join rooms over WebRTC; 'simulator': the devstack simulator's room bus.",
    )
    agent_job_executor: Literal["process", "thread"] = Field(
        default="process", description="Run each job in its own prewarmed process, or in a thread."
    )
    agent_load_threshold: float = Field(
        default=0.7, gt=0, description="Above this load the server stops assigning jobs to the worker."
    )
    agent_max_jobs: int | None = Field(
        default=None,
        ge=1,
        description="Capacity in jobs: load = running jobs / this. Unset: livekit-agents' CPU-based load "
        "(meaningless when the whole stack shares one laptop's CPU, as in `make demo`).",
    )
    agent_num_idle_processes: int = Field(
        default=1, ge=0, description="Job executors kept prewarmed (each costs memory and start-up CPU)."
    )
    agent_wait_for_user: bool = Field(
        default=True,
        description="Wait for the user before the greeting; false (curl, tests): ready without a user, and in a "
        "LiveKit room without speaking the greeting or starting a conversation (nobody would hear it).",
    )
    agent_user_wait_seconds: float = Field(default=30.0, gt=0, description="Deadline for the user to join.")
    agent_user_rejoin_grace_seconds: float = Field(
        default=10.0, ge=0, description="A user who left may come back this long before the job (and session) ends."
    )
    agent_stage_timeout_seconds: float = Field(
        default=15.0, gt=0, description="Deadline of every other readiness stage (connect, providers, ...)."
    )
    agent_greeting_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Deadline for speaking the greeting, playout included."
    )
    agent_tts: str = Field(
        default="",
        description="The TTS of flows that name none: 'espeak' (eSpeak NG, offline), 'silence', a LiveKit Inference "
        "model or an installed plugin; empty: 'espeak' in LiveKit rooms, 'silence' on the simulator's room bus.",
    )
    agent_factory: str = Field(
        default="",
        description="Your own agent: package.module:function receiving the flow and returning a livekit-agents Agent "
        "(examples/greeter_agent.py); unusable: every job fails at stage 'providers' with the reason.",
    )
    agent_voice: str = Field(
        default="en-us", description="eSpeak NG voice where the flow names none (its voice, else its language)."
    )
    agent_listener_wait_seconds: float = Field(
        default=10.0, gt=0, description="Deadline for the user to subscribe to the agent's audio before the greeting."
    )
    agent_speak_ms_per_char: float = Field(
        default=2.0, ge=0, description="The silence TTS: playout time per character of text."
    )
    agent_http_port: int = Field(default=8081, ge=0, description="Worker health-check HTTP port (0: pick a free port).")
    agent_http_host: str = Field(
        default="127.0.0.1",
        description="Address the health-check server binds: loopback by default; in Kubernetes the pod IP (probes "
        "come from the kubelet), '0.0.0.0' only where every interface is private.",
    )
    agent_drain_timeout_seconds: int = Field(
        default=60, ge=0, description="On SIGTERM/SIGINT, how long running jobs may finish before shutdown."
    )
    api_internal_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of the API's internal endpoints (flow init); empty: skip flow init, speak the "
        "greeting from the dispatch metadata.",
    )
    agent_flow_init_attempts: int = Field(
        default=5,
        ge=1,
        description="Flow-init attempts on 5xx/connection errors (a 503 with Retry-After does not count: it is "
        "waited out within the time bound).",
    )
    agent_flow_init_max_seconds: float = Field(default=10.0, gt=0, description="Flow-init retries: total time bound.")
    agent_flow_init_backoff_seconds: float = Field(default=0.1, gt=0, description="First flow-init retry delay.")

    @property
    def tts_name(self) -> str:
        """The default TTS: AGENT_TTS, or the backend's default."""
        return self.agent_tts or ("silence" if self.agent_room_backend == "simulator" else "espeak")
