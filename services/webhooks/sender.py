"""One HTTP attempt of one delivery: signed, bounded in time, never to a private address outside dev mode.

The address check is in the resolver (:class:`PublicOnlyResolver`), so the connection goes to an address that was
checked: a name that resolves to a public address at registration and to a private one later (DNS rebinding)
still cannot reach the internal network. Redirects are not followed (one could lead there too).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from services.runtime.sealed_secrets import SecretSeal, SecretUnreadable
from services.webhooks.repository import Attempt, Outcome
from services.webhooks.signing import signed_headers

USER_AGENT = "agentready-webhooks/1"
_ERROR_MAX = 500


class PrivateAddressError(OSError):
    """The endpoint's host is (or resolves to) a loopback, private or otherwise non-public address."""


def is_public(address: str) -> bool:
    """True when ``address`` (an IP) is globally routable: not loopback, private, link-local, reserved..."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicOnlyResolver(ThreadedResolver):
    """The system resolver (aiohttp's default without aiodns), public addresses only (none: the attempt fails)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The public addresses of ``host``; PrivateAddressError when it has none."""
        found = [r for r in await super().resolve(host, port, family) if is_public(r["host"])]
        if not found:
            raise PrivateAddressError(errno.EACCES, f"{host} resolves to no public address")
        return found


def new_session(*, allow_private: bool, max_connections: int) -> aiohttp.ClientSession:
    """The sender's HTTP client; outside dev mode it connects to public addresses only."""
    connector = aiohttp.TCPConnector(
        limit=max_connections, resolver=None if allow_private else PublicOnlyResolver(), ttl_dns_cache=60
    )
    return aiohttp.ClientSession(connector=connector, headers={"user-agent": USER_AGENT}, trust_env=False)


def _literal_ip(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


async def send(
    session: aiohttp.ClientSession, attempt: Attempt, *, timeout_s: float, allow_private: bool, seal: SecretSeal
) -> Outcome:
    """POST the delivery's body, signed now with the secrets ``seal`` opens; a 2xx answer within ``timeout_s`` is a
    success, anything else not (a secret no key opens too: nothing is sent, the attempt is retried as a failure)."""
    literal = _literal_ip(attempt.url)
    if literal is not None and not allow_private and not is_public(literal):
        # aiohttp does not resolve a literal address, so the resolver's check would not see it
        return Outcome(ok=False, error=f"refused: {literal} is not a public address")
    try:
        opened = [seal.open(stored) for stored in attempt.signing_secrets]
    except SecretUnreadable as exc:
        return Outcome(ok=False, error=f"not sent: {exc} (the endpoint's secret cannot be opened to sign it)")
    headers = signed_headers(opened, attempt.delivery_id, datetime.now(UTC), attempt.payload)
    try:
        async with session.post(
            attempt.url,
            data=attempt.payload.encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            code = response.status
    except TimeoutError:
        return Outcome(ok=False, error=f"no answer within {timeout_s:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:_ERROR_MAX])
    if 200 <= code < 300:
        return Outcome(ok=True, status_code=code)
    return Outcome(ok=False, status_code=code, error=f"answered HTTP {code}")
