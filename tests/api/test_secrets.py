"""Secrets the API signs with: empty ones refuse to start, in every mode; the public dev ones outside dev mode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.api.settings import DEV_AGENT_CREDENTIAL_SECRET, ApiSettings

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
