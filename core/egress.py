"""Requests to URLs that account users choose (the alert webhook), without reaching our own network (SSRF).

The rule: `https` only (`http` too when WEBHOOK_ALLOW_HTTP is on), to a host whose every address is public, unless
the host is listed in WEBHOOK_ALLOWED_INTERNAL_HOSTS. It is checked when the URL is set and again at each delivery,
since DNS can change; the delivery then connects to the very address it checked (no second lookup an attacker
could answer differently) and follows no redirect. Every refusal because of a private address reads the same,
whatever the port, so failed deliveries cannot be used to map which internal ports are open.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

PRIVATE_ADDRESS = "the webhook URL is not allowed: its host is not a public internet address"
UNREACHABLE = "webhook unreachable: the connection failed or timed out"


class EgressRefused(Exception):
    """The URL may not be used, or the request to it failed; the message is safe to show to the account user."""


@dataclass(frozen=True)
class EgressTarget:
    scheme: str
    host: str  # as written in the URL, for the Host header and TLS
    port: int
    path: str  # path and query
    address: str  # the checked IP address to connect to


def _allowed_internal(host: str) -> bool:
    allowed = {name.strip().lower().strip("[]") for name in settings.WEBHOOK_ALLOWED_INTERNAL_HOSTS}
    return host.lower() in allowed


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _parse(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise EgressRefused("the webhook URL is malformed") from None
    schemes = {"https", "http"} if settings.WEBHOOK_ALLOW_HTTP else {"https"}
    if parts.scheme not in schemes:
        raise EgressRefused(
            "the webhook URL must start with https://" if schemes == {"https"} else "the webhook URL must be http(s)"
        )
    if not parts.hostname:
        raise EgressRefused("the webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise EgressRefused("the webhook URL must not contain a user name or password")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def egress_url_check(url: str) -> str:
    """The URL, stripped, if an account may point a webhook at it; else EgressRefused with the reason.

    A host that does not resolve now is accepted (it may exist later; every delivery checks again); one that
    resolves to any non-public address is refused unless it is in WEBHOOK_ALLOWED_INTERNAL_HOSTS.
    """
    _, host, port, _ = _parse(url)
    if not _allowed_internal(host) and not all(_is_public(a) for a in _resolve(host, port)):
        raise EgressRefused(PRIVATE_ADDRESS)
    return url.strip()


def egress_target(url: str) -> EgressTarget:
    """Where a request to `url` would go now: refused unless every address the host resolves to is allowed."""
    scheme, host, port, path = _parse(url)
    addresses = _resolve(host, port)
    if not addresses:
        raise EgressRefused("webhook host could not be resolved")
    if not _allowed_internal(host) and not all(_is_public(a) for a in addresses):
        raise EgressRefused(PRIVATE_ADDRESS)
    return EgressTarget(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address, with the certificate verified for the URL's host name."""

    def __init__(self, target: EgressTarget, timeout: float) -> None:
        super().__init__(target.address, target.port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = target.host

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


def egress_post(*, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to `url` under the egress rule; the answer's status when 2xx, else EgressRefused.

    Redirects are not followed (a 3xx is a failed delivery): the next hop could be an internal address.
    """
    target = egress_target(url)
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(target, timeout)
    else:
        connection = http.client.HTTPConnection(target.address, target.port, timeout=timeout)
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != default_port:
        host_header = f"{host_header}:{target.port}"
    try:
        connection.request("POST", target.path, body=body, headers={**headers, "Host": host_header})
        status = connection.getresponse().status
    except ssl.SSLError:
        raise EgressRefused("webhook TLS failed: the certificate is not valid for this host") from None
    except (OSError, http.client.HTTPException):
        raise EgressRefused(UNREACHABLE) from None
    finally:
        connection.close()
    if 300 <= status < 400:
        raise EgressRefused(f"webhook answered {status}: redirects are not followed")
    if not 200 <= status < 300:
        raise EgressRefused(f"webhook answered {status}")
    return status
