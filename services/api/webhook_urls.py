"""Which URLs an organisation may register as a webhook endpoint: https, and (outside dev mode) public hosts only.

The check here answers at registration with a clear 422; the webhook sender checks every address again when it
connects (a name may resolve elsewhere later), so this is the friendly half of the SSRF defence, not all of it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
_RESOLVE_TIMEOUT_S = 2.0
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")


class WebhookUrlError(ValueError):
    """The URL cannot be a webhook endpoint; the message says why and what to send instead."""


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _addresses(host: str) -> list[str]:
    """The addresses ``host`` resolves to now; none when it does not resolve (within a short bound)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(_RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return []
    return [str(info[4][0]) for info in infos]


async def checked_webhook_url(url: str, *, dev_mode: bool) -> str:
    """``url`` if it may be registered; WebhookUrlError otherwise.

    Outside dev mode: https only, and no loopback, private, link-local or reserved address, given literally or as
    a name that resolves to one. A name that does not resolve yet is accepted (its deliveries fail until it does).
    """
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url.strip())
    allowed = ("https", "http") if dev_mode else ("https",)
    if parts.scheme not in allowed:
        raise WebhookUrlError(
            "the URL must start with https:// (http:// is accepted only with DEV_MODE=true)"
            if not dev_mode
            else "the URL must start with https:// or http://"
        )
    host = parts.hostname
    if not host:
        raise WebhookUrlError("the URL has no host: send e.g. https://example.com/webhooks/agentready")
    if parts.fragment:
        raise WebhookUrlError("the URL must not have a #fragment")
    if dev_mode:
        return url.strip()
    refusal = (
        "webhooks go to public addresses only (loopback, private, link-local and reserved ones are refused "
        "outside DEV_MODE); register your endpoint's public https URL"
    )
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not _is_public(literal):
            raise WebhookUrlError(f"{host} is not a public address: {refusal}")
        return url.strip()
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES):
        raise WebhookUrlError(f"{host} is a local name: {refusal}")
    private = [a for a in await _addresses(host) if not _is_public(ipaddress.ip_address(a.split("%", 1)[0]))]
    if private:
        raise WebhookUrlError(f"{host} resolves to {private[0]}, which is not a public address: {refusal}")
    return url.strip()
