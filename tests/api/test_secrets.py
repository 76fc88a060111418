"""Secrets the API signs with: empty ones refuse to start, in every mode; the public dev ones outside dev mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.agent.settings import AgentSettings
from services.api.settings import DEV_AGENT_CREDENTIAL_SECRET, ApiSettings
from services.dispatcher.settings import DispatcherSettings

REAL = "r" * 40


@pytest.mark.parametrize("dev_mode", [False, True])
@pytest.mark.parametrize("secret", ["", "   "])
def test_an_empty_agent_credential_secret_refuses_to_start(dev_mode: bool, secret: str) -> None:
    with pytest.raises(ValidationError, match="AGENT_CREDENTIAL_SECRET is empty; set one"):
        ApiSettings(dev_mode=dev_mode, livekit_api_secret=REAL, agent_credential_secret=secret)


@pytest.mark.parametrize("dev_mode", [False, True])
def test_an_empty_livekit_secret_refuses_to_start(dev_mode: bool) -> None:
    with pytest.raises(ValidationError, match="LIVEKIT_API_SECRET is empty"):
        ApiSettings(dev_mode=dev_mode, livekit_api_secret="", agent_credential_secret=REAL)


def test_the_public_dev_secrets_refuse_to_start_outside_dev_mode() -> None:
    with pytest.raises(ValidationError, match="AGENT_CREDENTIAL_SECRET is the public dev default"):
        ApiSettings(dev_mode=False, livekit_api_secret=REAL, agent_credential_secret=DEV_AGENT_CREDENTIAL_SECRET)
    with pytest.raises(ValidationError, match="LIVEKIT_API_SECRET is the public dev default"):
        ApiSettings(dev_mode=False, agent_credential_secret=REAL)
    assert ApiSettings(dev_mode=False, livekit_api_secret=REAL, agent_credential_secret=REAL).dev_mode is False


@pytest.mark.parametrize(
    "public", ["secret", "devkey", "Secret", DEV_AGENT_CREDENTIAL_SECRET, "changeme", "agentready", "password"]
)
def test_known_public_values_refuse_to_start_outside_dev_mode_saying_how_to_generate_one(public: str) -> None:
    with pytest.raises(ValidationError, match=r"AGENT_CREDENTIAL_SECRET is the public dev default.*openssl rand"):
        ApiSettings(dev_mode=False, livekit_api_secret=REAL, agent_credential_secret=public)
    with pytest.raises(ValidationError, match=r"LIVEKIT_API_SECRET is the public dev default.*openssl rand"):
        ApiSettings(dev_mode=False, livekit_api_secret=public, agent_credential_secret=REAL)
    assert ApiSettings(dev_mode=True, livekit_api_secret=public, agent_credential_secret=public).dev_mode


def test_a_secret_shorter_than_32_characters_refuses_to_start_outside_dev_mode() -> None:
    short = "k3Yq9-" * 5  # 30 characters, not a known value
    with pytest.raises(ValidationError, match=r"AGENT_CREDENTIAL_SECRET is 30 characters long.*at least 32.*openssl"):
        ApiSettings(dev_mode=False, livekit_api_secret=REAL, agent_credential_secret=short)
    with pytest.raises(ValidationError, match="LIVEKIT_API_SECRET is 30 characters long"):
        ApiSettings(dev_mode=False, livekit_api_secret=short, agent_credential_secret=REAL)
    assert ApiSettings(dev_mode=False, livekit_api_secret=REAL[:32], agent_credential_secret=REAL[:32])


def test_every_service_refuses_a_weak_livekit_secret_outside_dev_mode() -> None:
    for settings in (AgentSettings, DispatcherSettings):
        with pytest.raises(ValidationError, match="LIVEKIT_API_SECRET is the public dev default"):
            settings(dev_mode=False, livekit_api_secret="devkey")
        with pytest.raises(ValidationError, match="at least 32"):
            settings(dev_mode=False, livekit_api_secret="short-but-not-public")
        assert settings(dev_mode=False, livekit_api_secret=REAL).livekit_api_secret == REAL


def test_a_refused_setting_is_named_but_its_value_is_not_printed() -> None:
    with pytest.raises(ValidationError) as refused:
        ApiSettings(dev_mode=False, agent_credential_secret=REAL, livekit_api_secret="short-but-real-ish")
    printed = str(refused.value)  # what a crashed start-up leaves in the operator's log
    assert "LIVEKIT_API_SECRET is 18 characters long" in printed
    assert "short-but-real-ish" not in printed and "input_value" not in printed
