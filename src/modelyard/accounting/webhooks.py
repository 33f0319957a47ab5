"""POST an alert to a webhook, in a worker thread, to an address checked at send time.

The host name is resolved here and every address it resolves to must be public (unless
`allow_private`); the connection then goes to the checked address itself — the name is not looked
up a second time — so a DNS answer that changes between the check and the connect (rebinding)
cannot point the request at an internal service. TLS still verifies the certificate for the name.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from urllib.parse import urlsplit

from ..addresses import public_ip


class BlockedAddress(Exception):
    """The webhook's host resolves to an address that alerts may not be sent to."""


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def resolve_checked(host: str, port: int, allow_private: bool) -> str:
    """One address of `host` to connect to; BlockedAddress if any of its addresses is not public."""
    addrs = [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    if not allow_private:
        bad = [a for a in addrs if not public_ip(a)]
        if bad:
            raise BlockedAddress(f"{host} resolves to {bad[0]}, a loopback, private or link-local address")
    return addrs[0]


def post_json(url: str, body: bytes, *, timeout_s: float, allow_private: bool) -> int:
    """POST `body` (JSON) to `url`; the response status. Blocking: run it in a thread."""
    u = urlsplit(url)
    https = u.scheme == "https"
    port = u.port or (443 if https else 80)
    host = u.hostname or ""
    ip = resolve_checked(host, port, allow_private)
    conn = (_PinnedHTTPS if https else _PinnedHTTP)(host, port, ip, timeout_s)
    try:
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        conn.request("POST", path, body, {"content-type": "application/json", "user-agent": "modelyard-alerts"})
        resp = conn.getresponse()
        resp.read(65536)
        return resp.status
    finally:
        conn.close()
