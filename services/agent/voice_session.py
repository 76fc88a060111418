"""The agent's voice in a real LiveKit room: a livekit-agents ``AgentSession`` running the flow's ``Agent``.

The session starts once the flow is known and the user is in the room; its audio track is ``agent-voice``. The
greeting is ``session.say(greeting, allow_interruptions=True)``, spoken only once someone subscribed to that track,
and readiness waits for its playout. After ``agent.ready`` the same session is the conversation, until the job ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from livekit import rtc
from livekit.agents import NOT_GIVEN, Agent, AgentSession, AgentStateChangedEvent, ErrorEvent, room_io

from contracts.providers import ProviderChoice
from services.agent.custom_agent import AgentFactory, default_agent
from services.agent.flow_client import FlowConfig
from services.agent.speech_models import Defaults, ProviderError, SpeechModels, build_models

TRACK_NAME = "agent-voice"
log = structlog.get_logger(__name__)


class SessionVoice:
    """:class:`~services.agent.voice.Voice` as an ``AgentSession`` in the job's room."""

    def __init__(
        self,
        room: rtc.Room,
        defaults: Defaults,
        factory: AgentFactory | None,
        *,
        timeout_s: float,
        setup_error: ProviderError | None = None,
    ) -> None:
        self._room = room
        self._defaults = defaults
        self._factory = factory
        self._timeout_s = timeout_s
        self._setup_error = setup_error
        self._models: SpeechModels | None = None
        self._session: AgentSession[None] | None = None

    async def prepare(self, choice: ProviderChoice) -> None:
        """Build the flow's models (its TTS always: the service's default when it names none)."""
        if self._setup_error is not None:
            raise self._setup_error
        self._models = build_models(choice, self._defaults)
        if self._models.missing:  # said once per job: the agent greets, but cannot hear or answer
            log.warning("conversation_without_models", missing=self._models.missing)

    async def start(self, flow: FlowConfig, user: str | None) -> None:
        """Start the ``AgentSession`` with the flow's ``Agent``, listening to ``user``; without a user
        (AGENT_WAIT_FOR_USER=false: curl, tests) there is nobody to talk to, so no session starts."""
        if self._models is None:
            raise RuntimeError("start() before prepare()")
        if user is None:
            log.info("conversation_not_started", why="AGENT_WAIT_FOR_USER=false: no user to talk to")
            return
        models = self._models
        agent: Agent = self._factory(flow) if self._factory is not None else default_agent(flow)
        session: AgentSession[None] = AgentSession(
            tts=models.tts,
            stt=models.stt if models.stt is not None else NOT_GIVEN,
            llm=models.llm if models.llm is not None else NOT_GIVEN,
            vad=models.vad,
        )
        options = room_io.RoomOptions(
            audio_input=models.stt is not None,  # nobody to hear with: do not decode the user's audio
            audio_output=room_io.AudioOutputOptions(track_name=TRACK_NAME),
            close_on_disconnect=False,  # the job, not the session, decides when the room is left
            participant_identity=user or NOT_GIVEN,
        )
        self._session = session
        async with asyncio.timeout(self._timeout_s):
            await session.start(agent, room=self._room, room_options=options)
        log.info("conversation_started", agent=type(agent).__name__, tts=models.tts.model)

    async def wait_for_listener(self) -> None:
        """Return once the user's SDK subscribed to ``agent-voice`` (the session's own signal)."""
        subscribed = self._started().room_io.subscribed_fut
        if subscribed is None:
            raise RuntimeError("the session has no audio output")
        await asyncio.shield(subscribed)  # a timeout of the wait must not cancel the session's own future

    async def say(self, text: str, started: Callable[[], None]) -> None:
        """``session.say(text, allow_interruptions=True)``, awaited to the end of its playout; fails if no audio
        played at all (a TTS error must not turn into a greeting nobody heard)."""
        if self._session is None:  # no user (see start): a greeting into a track nobody hears would be a pretence
            log.info("greeting_not_spoken", why="no user in the room (AGENT_WAIT_FOR_USER=false)")
            return
        session = self._session
        errors: list[str] = []
        spoke = asyncio.Event()

        def on_state(event: AgentStateChangedEvent) -> None:
            if event.new_state == "speaking" and not spoke.is_set():
                spoke.set()
                started()

        def on_error(event: ErrorEvent) -> None:
            errors.append(str(getattr(event.error, "error", event.error)))

        session.on("agent_state_changed", on_state)
        session.on("error", on_error)
        try:
            handle = session.say(text, allow_interruptions=True)
            await handle.wait_for_playout()
        finally:
            session.off("agent_state_changed", on_state)
            session.off("error", on_error)
        if not spoke.is_set():
            raise ProviderError(f"the greeting produced no audio ({'; '.join(errors) or 'the TTS returned nothing'})")
        if handle.interrupted:
            log.info("greeting_interrupted")

    async def aclose(self) -> None:
        """Close the session (bounded); the room stays, the job leaves it."""
        session, self._session = self._session, None
        if session is None:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await session.aclose()
        except TimeoutError:
            log.warning("conversation_close_timed_out", timeout_s=self._timeout_s)

    def _started(self) -> AgentSession[None]:
        if self._session is None:
            raise RuntimeError("the conversation has not started")
        return self._session
