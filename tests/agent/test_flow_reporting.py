"""The readiness pipeline's flow events for watchers: every stage's start and end, the flow, the greeting,
a failure with its stage (reason for admins); none of them on the readiness path's broker publisher."""

from __future__ import annotations

import json
import uuid

from contracts.flow_events import FlowEvent
from services.agent.readiness import ReadinessOptions, run_readiness
from services.agent.speech_models import ProviderError
from tests.agent.fakes import FakePublisher, FakeRoom, FakeVoice

FAST = ReadinessOptions(user_wait_seconds=0.2, stage_timeout_seconds=2.0, greeting_timeout_seconds=2.0)


def metadata(session_id: str) -> str:
    return json.dumps(
        {"sessionId": session_id, "flowId": "flow-1", "orgId": "org-1", "roomName": "room-1", "greeting": "Hi"}
    )


def names(flow: FakePublisher) -> list[str]:
    out = []
    for event in flow.events:
        assert isinstance(event, FlowEvent) and event.room_name == "room-1"
        out.append(f"{event.kind}:{event.name}:{event.data.get('stage', '')}")
    return out


async def test_a_ready_session_reports_each_stage_in_order() -> None:
    sid, publisher, flow = f"s-{uuid.uuid4().hex}", FakePublisher(), FakePublisher()
    outcome = await run_readiness(
        job_id="j", raw_metadata=metadata(sid), room=FakeRoom(), publisher=publisher,
        voice=FakeVoice(), options=FAST, flow_events=flow,
    )  # fmt: skip
    assert outcome.ready and publisher.types() == ["agent.joined", "agent.ready"]
    stages = ["joined", "connect", "providers", "wait_for_user"]
    expected = [f"stage:stage.{edge}:{s}" for s in stages for edge in ("started", "finished")]
    expected += ["flow:flow.initialised:"]
    speaking = ("session_start", "listener_subscribed", "greeting")
    expected += [f"stage:stage.{edge}:{s}" for s in speaking for edge in ("started", "finished")]
    expected += ["flow:greeting.spoken:"]
    expected += [f"stage:stage.{edge}:{s}" for s in ("announce", "ready") for edge in ("started", "finished")]
    assert names(flow) == expected
    finished = [e for e in flow.events if isinstance(e, FlowEvent) and e.name == "stage.finished"]
    assert all(e.data["durationMs"] >= 0 for e in finished)
    initialised = next(e for e in flow.events if isinstance(e, FlowEvent) and e.name == "flow.initialised")
    assert initialised.details == {"flowId": "flow-1", "greeting": "Hi"} and initialised.session_id == sid


async def test_a_failure_names_the_stage_and_keeps_the_reason_for_admins() -> None:
    flow = FakePublisher()
    outcome = await run_readiness(
        job_id="j", raw_metadata=metadata(f"s-{uuid.uuid4().hex}"), room=FakeRoom(), publisher=FakePublisher(),
        voice=FakeVoice(prepare_error=ProviderError("no voice")), options=FAST, flow_events=flow,
    )  # fmt: skip
    assert outcome.failed_stage == "providers"
    last = flow.events[-1]
    assert isinstance(last, FlowEvent)
    assert (last.kind, last.name, last.data, last.error) == (
        "error",
        "stage.failed",
        {"stage": "providers"},
        {"reason": "ProviderError: no voice"},
    )
    assert names(flow)[-2] == "stage:stage.started:providers"


async def test_a_broker_that_fails_does_not_fail_the_session() -> None:
    outcome = await run_readiness(
        job_id="j", raw_metadata=metadata(f"s-{uuid.uuid4().hex}"), room=FakeRoom(), publisher=FakePublisher(),
        voice=FakeVoice(), options=FAST, flow_events=FakePublisher(error=ConnectionError("redis down")),
    )  # fmt: skip
    assert outcome.ready


async def test_an_unwatched_room_gets_no_flow_events_until_a_watcher_arrives() -> None:
    """Events before the room is watched are skipped (the relay would drop them); from then on all go out."""
    flow, checks = FakePublisher(), []
    watched_after = 3  # the room becomes watched at the 4th check

    async def is_watched(room_name: str) -> bool:
        checks.append(room_name)
        return len(checks) > watched_after

    outcome = await run_readiness(
        job_id="j", raw_metadata=metadata(f"s-{uuid.uuid4().hex}"), room=FakeRoom(), publisher=FakePublisher(),
        voice=FakeVoice(), options=FAST, flow_events=flow, flow_watched=is_watched,
    )  # fmt: skip
    assert outcome.ready
    assert checks == ["room-1"] * (watched_after + 1)  # once watched, never asked again
    # as in the first test: 4 stages, flow + session_start + listener_subscribed + greeting (8 events), announce, ready
    everything = 8 + 8 + 4
    assert len(flow.events) == everything - watched_after
    assert names(flow)[0] == "stage:stage.finished:connect"
