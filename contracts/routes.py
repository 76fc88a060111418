"""HTTP paths that other parts of a deployment configure (names only, no I/O)."""

from __future__ import annotations

LIVEKIT_WEBHOOK_PATH = "/api/livekit/webhook"
"""Where the API receives LiveKit's signed webhooks; LiveKit's config (``webhook.urls``) points here."""
