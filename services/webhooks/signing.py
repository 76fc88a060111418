"""Standard Webhooks signatures (https://www.standardwebhooks.com): the headers of one attempt.

``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), the secret being the
base64-decoded part after ``whsec_``; computed by the specification's own Python package.
"""

from __future__ import annotations

from datetime import datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(secret: str, webhook_id: str, at: datetime, body: str) -> dict[str, str]:
    """The headers of one attempt to send ``body``: its id (the same on every retry), timestamp and signature."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
    }
