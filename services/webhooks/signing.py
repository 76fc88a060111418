"""Standard Webhooks signatures (https://www.standardwebhooks.com): the headers of one attempt.

``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), the secret being the
base64-decoded part after ``whsec_``; computed by the specification's own Python package. During a secret's
rotation the header carries one signature per secret, space-separated, as the specification allows: a receiver
still on the old secret and one already on the new one both verify it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(secrets: Sequence[str], webhook_id: str, at: datetime, body: str) -> dict[str, str]:
    """The headers of one attempt to send ``body``: its id (the same on every retry), timestamp and a signature by
    each of ``secrets``."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(webhook_id, at, body) for secret in secrets),
    }
