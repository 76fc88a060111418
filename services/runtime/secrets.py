"""Which signing secrets a service refuses: empty ones always; outside dev mode also public or short ones.

A public value is one this project (deploy/, the devstack, livekit-server --dev) or common practice ships as a
placeholder: anyone who read the repository could mint tokens with it.
"""

from __future__ import annotations

MIN_SECRET_LENGTH = 32  # 32 characters, as livekit-server itself wants outside --dev

GENERATE_HINT = (
    "generate one with: openssl rand -base64 32 (or python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)

# Placeholders in this repository (devstack, deploy/, docs) and the usual suspects, compared case-insensitively.
PUBLIC_SECRETS: frozenset[str] = frozenset(
    {
        "secret",
        "devkey",
        "devsecret",
        "dev-secret",
        "dev-agent-credential-secret-change-me",
        "agentready",
        "change-me",
        "changeme",
        "password",
        "test",
    }
)


def refuse_weak_secret(name: str, value: str, *, dev_mode: bool) -> None:
    """ValueError saying why ``value`` may not sign anything and how to get a good one; None when it may."""
    if not value.strip():
        raise ValueError(f"{name} is empty; set one ({GENERATE_HINT})")
    if dev_mode:
        return
    if value.strip().lower() in PUBLIC_SECRETS:
        raise ValueError(
            f"{name} is the public dev default or a well-known placeholder ({value!r}); set a real secret, "
            f"{GENERATE_HINT}; or DEV_MODE=true for local development"
        )
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"{name} is {len(value)} characters long; outside dev mode a secret needs at least {MIN_SECRET_LENGTH}: "
            f"{GENERATE_HINT}"
        )
