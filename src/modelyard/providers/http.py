"""What the HTTP adapters share: the pooled upstream clients, and the mapping of transport failures
(refused, reset, timed out, not-the-protocol) onto the error taxonomy.

Two clients, chosen per URL. `https://` upstreams go through wreq (hyper/tokio in Rust, awaited
from asyncio): measured on one core against the harness's fake upstream (bench/upstream_client.py),
a pooled keep-alive POST costs ~30 µs of CPU against ~98 µs with aiohttp, a stream ~63 µs against
~122 µs (docs/BENCHMARKS.md). Its clients run on the one I/O runtime of `io_threads.py`; cancelling
the awaiting task aborts the Rust request and drops its connection, which is how an upstream
learns to stop generating (pyreqwest, measured alongside, did not, and was ruled out for that).
Plain `http://` upstreams go through the in-loop client of `h1_client.py`, which saves the
hand-overs to the I/O threads (`server.plain_http: wreq` sends them through wreq too).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import wreq

from .. import __version__
from ..deployment import Deployment, Endpoint
from ..errors import (
    ConfigError,
    ConnectionFailed,
    ModelyardError,
    clamp_retry_after,
    excerpt,
    parse_retry_after,
    redact,
)
from ..telemetry import tracing
from . import h1_client, io_threads
from .base import Provider
from .streams import LoopStream, UpstreamStream, WreqStream
from .transport import Headers, ResponseHeaders, map_transport

_USER_AGENT = f"modelyard/{__version__}"
log = logging.getLogger("modelyard.providers")


PLAIN_HTTP = ("loop", "wreq")
_plain_http = "loop"


def configure_plain_http(choice: str) -> None:
    """Which client calls `http://` upstreams from now on (`server.plain_http`): `loop` (the
    in-loop client, default) or `wreq` (as `https://` ones). Process-wide, set by `modelyard serve`."""
    global _plain_http
    if choice not in PLAIN_HTTP:
        raise ValueError(f"plain_http: must be one of {', '.join(PLAIN_HTTP)}, got {choice!r}")
    _plain_http = choice


class Route:
    """How calls to one plain-http URL go out: the origin's pool and the request line + Host header."""

    __slots__ = ("pool", "prefix")

    def __init__(self, pool: h1_client.Pool, prefix: bytes) -> None:
        self.pool, self.prefix = pool, prefix


class HttpClients:
    """A provider's pooled upstream clients: wreq clients, one per connect timeout and TLS
    verification setting (client-level settings), so every deployment of a provider with the same
    ones shares keep-alive connections; and the in-loop pools of plain-http origins, per origin and
    connect timeout."""

    __slots__ = ("_by_connect", "_identities", "_pools", "_routes")

    def __init__(self) -> None:
        self._by_connect: dict[tuple[float, bool | str, tuple[str, str] | None], wreq.Client] = {}
        self._identities: dict[tuple[str, str], wreq.Identity] = {}
        self._pools: dict[tuple[str, int, float], h1_client.Pool] = {}
        self._routes: dict[tuple[str, float], Route | None] = {}

    def get(self, connect_s: float, tls_verify: bool | str = True,
            client_cert: tuple[str, str] | None = None) -> wreq.Client:
        """The client for a connect timeout and a deployment's TLS settings (`tls_verify`, and the
        (certificate, key) files of `tls_client_cert`)."""
        key = (connect_s, tls_verify, client_cert)
        client = self._by_connect.get(key)
        if client is None:
            tls: dict[str, Any] = {"tls_identity": self.identity(client_cert)} if client_cert else {}
            client = self._by_connect[key] = wreq.Client(
                runtime=io_threads.runtime(),  # one I/O runtime per process (io_threads.py)
                connect_timeout=timedelta(seconds=connect_s),
                no_proxy=True,  # never a proxy picked up from the environment
                redirect=wreq.redirect.Policy.none(),  # an API that redirects is misconfigured: say so
                user_agent=_USER_AGENT,
                tls_verify=Path(tls_verify) if isinstance(tls_verify, str) else tls_verify,
                **tls,
            )
        return client

    def identity(self, files: tuple[str, str]) -> wreq.Identity:
        """The client certificate in a (certificate chain, PKCS#8 key) pair of PEM files, read once;
        ValueError saying what is wrong with them."""
        found = self._identities.get(files)
        if found is None:
            cert, key = (Path(f).read_bytes() for f in files)
            if b"PRIVATE KEY-----" in key and b"BEGIN PRIVATE KEY" not in key:
                raise ValueError(f"{files[1]} is not a PKCS#8 key (BEGIN PRIVATE KEY): convert it with "
                                 "`openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`")
            try:
                found = self._identities[files] = wreq.Identity.from_pkcs8_pem(cert, key)
            except Exception as e:  # (the binding raises its own error types)
                raise ValueError(f"{files[0]} and {files[1]} are not a PEM certificate chain and its "
                                 f"PKCS#8 key ({type(e).__name__})") from None
        return found

    def route(self, url: str, connect_s: float) -> Route | None:
        """The in-loop route for `url`, or None when wreq calls it (TLS, or `plain_http: wreq`).
        Worked out once per URL and connect timeout."""
        key = (url, connect_s)
        try:
            return self._routes[key]
        except KeyError:
            pass
        route = None
        parts = urlsplit(url)
        if _plain_http == "loop" and parts.scheme == "http" and parts.hostname and not parts.username:
            port = parts.port or 80
            pool_key = (parts.hostname, port, connect_s)
            pool = self._pools.get(pool_key)
            if pool is None:
                pool = self._pools[pool_key] = h1_client.Pool(parts.hostname, port, connect_s)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            prefix = f"POST {target} HTTP/1.1\r\nhost: {parts.netloc}\r\nuser-agent: {_USER_AGENT}\r\n"
            route = Route(pool, prefix.encode("latin-1"))
        self._routes[key] = route
        return route

    async def close(self) -> None:
        clients, self._by_connect = list(self._by_connect.values()), {}
        for c in clients:
            c.close()
        pools, self._pools, self._routes = list(self._pools.values()), {}, {}
        for p in pools:
            p.close()


# Header names whose values are credentials (besides every configured header, see `make_endpoint`).
_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key", "proxy-authorization")


def make_endpoint(dep: Deployment, url: str, headers: dict[str, str], *, stream_url: str = "",
                  max_tokens_key: str = "max_tokens") -> Endpoint:
    """What every call to `dep` sends: URL, the full header set (names case-folded, so a configured
    `Content-Type` replaces the default rather than doubling it) and its total timeout; and the
    values errors must never show (the key, every configured header value, credential headers)."""
    folded = {k.lower(): v for k, v in headers.items()}
    secrets = {dep.api_key or "", *dep.headers.values(), *(folded.get(h, "") for h in _SECRET_HEADERS)}
    # Longest first, so a value that contains another is removed whole; short values are not
    # secrets worth a false positive ("1", "json").
    ordered = tuple(sorted((v for v in secrets if len(v) >= 6), key=len, reverse=True))
    return Endpoint(url=url, headers=folded, timeout=timedelta(seconds=dep.timeout_s),
                    stream_url=stream_url or url, max_tokens_key=max_tokens_key, secrets=ordered,
                    h1_headers=header_lines(folded))


_NOT_ON_THE_WIRE = re.compile(r"[\r\n\0]")
_NOT_IN_A_NAME = re.compile(r"[\s:]")


def header_lines(headers: dict[str, str]) -> bytes | None:
    """`headers` as HTTP/1.1 header lines; None if a name or value cannot be sent as it is (a line
    break, a NUL, a character outside Latin-1): wreq then calls that endpoint and reports it."""
    for k, v in headers.items():
        if not k or _NOT_IN_A_NAME.search(k) or _NOT_ON_THE_WIRE.search(k) or _NOT_ON_THE_WIRE.search(v):
            return None
    try:
        return "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
    except UnicodeEncodeError:
        return None


class HttpProvider(Provider):
    """An adapter that speaks HTTP: one set of pooled clients per provider instance, and each
    deployment's `Endpoint` computed once, by the subclass's `endpoint`, when it is prepared."""

    def __init__(self) -> None:
        self._http = HttpClients()

    def endpoint(self, dep: Deployment) -> Endpoint:
        """URL and headers for `dep` (see `make_endpoint`)."""
        raise NotImplementedError

    def prepare(self, dep: Deployment) -> None:
        dep.endpoint = self.endpoint(dep)
        dep.adapter = self
        if dep.tls_verify is False and dep.endpoint.url.startswith("https:"):
            log.warning("deployment %s: TLS certificates are not verified (tls_verify: false)", dep.name)
        if dep.tls_client_cert is not None:  # a bad file fails the start, not the first request
            try:
                self._http.identity(dep.tls_client_cert)
            except (OSError, ValueError) as e:
                raise ConfigError("<config>", f"deployments.{dep.name}.tls_client_cert", str(e)) from None
        dep.timeout_enforced = True  # the client's total timeout ends every call

    def endpoint_of(self, dep: Deployment) -> Endpoint:
        """`dep`'s endpoint, prepared now if no gateway did (a deployment built by hand)."""
        ep = dep.endpoint
        if ep is None:
            ep = dep.endpoint = self.endpoint(dep)
        return ep

    async def close(self) -> None:
        await self._http.close()

    def post(self, dep: Deployment, ep: Endpoint, url: str, body: bytes
             ) -> Coroutine[Any, Any, tuple[int, ResponseHeaders, bytes]]:
        """POST `body` to `url` of `dep`, read the whole answer: (status, headers, body). Returns the
        module's `post` coroutine itself (to await): no coroutine of its own in between."""
        return post(self._http, dep, ep, url, body)

    def open_stream(self, dep: Deployment, ep: Endpoint, url: str, body: bytes
                    ) -> Coroutine[Any, Any, UpstreamStream]:
        """A streamed POST of `body` to `url` of `dep` (to await): status and headers, then the body as
        it arrives."""
        return open_stream(self._http, dep, ep, url, body)


def _send(clients: HttpClients, dep: Deployment, ep: Endpoint, url: str, body: bytes) -> Any:
    """The wreq POST of `body` to `dep` (a client coroutine: await it for the response head)."""
    headers = ep.headers if tracing.TRACER is None else tracing.inject(ep.headers)  # + traceparent
    client = clients.get(dep.connect_timeout_s, dep.tls_verify, dep.tls_client_cert)
    return client.post(url, headers=headers, body=body, timeout=ep.timeout)


def _h1_request(route: Route, ep: Endpoint, body: bytes) -> bytes | None:
    """The whole request for the in-loop client: request line, headers, body. None: wreq calls it
    (a header that cannot go on the wire as it is)."""
    lines = ep.h1_headers if tracing.TRACER is None else header_lines(tracing.inject(ep.headers))
    if lines is None:
        return None
    return b"%s%scontent-length: %d\r\n\r\n%s" % (route.prefix, lines, len(body), body)


async def post(clients: HttpClients, dep: Deployment, ep: Endpoint, url: str, body: bytes
               ) -> tuple[int, ResponseHeaders, bytes]:
    """POST `body`, read the whole answer: (status, headers, body). (try/except, not `with
    transport_errors`: on every call, a context manager's three method calls would cost more than
    the rest of this function.)"""
    route = clients.route(url, dep.connect_timeout_s)
    try:
        if route is not None and (data := _h1_request(route, ep, body)) is not None:
            return await route.pool.post(data, ep.timeout.total_seconds())
        resp = await _send(clients, dep, ep, url, body)
        raw = await resp.bytes()
    except ModelyardError:
        raise
    except Exception as e:
        raise map_transport(e, dep.name) from e
    return resp.status.as_int(), Headers(resp=resp), raw.tobytes()


async def open_stream(clients: HttpClients, dep: Deployment, ep: Endpoint, url: str, body: bytes
                      ) -> UpstreamStream:
    """A streamed POST: returns once status and headers are in."""
    route = clients.route(url, dep.connect_timeout_s)
    try:
        if route is not None and (data := _h1_request(route, ep, body)) is not None:
            return LoopStream(dep.name, await route.pool.open(data, ep.timeout.total_seconds()))
        resp = await _send(clients, dep, ep, url, body)
        return await WreqStream.open(dep.name, resp)
    except ModelyardError:
        raise
    except Exception as e:
        raise map_transport(e, dep.name) from e


def retry_after_of(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI) or `retry-after` headers, clamped and sanitised
    (an upstream's `inf`, NaN, negative or absurd value never reaches a timer or a response header)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return clamp_retry_after(float(ms) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def upstream_text(text: Any, ep: Endpoint | None, limit: int = 300) -> str:
    """An upstream's structured error message as a client may see it: redacted, one line, clipped."""
    out = " ".join(redact(str(text)[: 4 * limit], ep.secrets if ep else ()).split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


def log_body(dep: Deployment, what: str, body: bytes | str, *, level: int = logging.WARNING) -> None:
    """Keep a redacted, truncated excerpt of an upstream body in the log (never in a client error)."""
    if log.isEnabledFor(level):
        ep = dep.endpoint
        log.log(level, "deployment '%s' %s; body: %s", dep.name, what, excerpt(body, ep.secrets if ep else ()))


def load_json(body: bytes, dep: Deployment) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        log_body(dep, "returned a body that is not JSON", body)
        raise ConnectionFailed(f"deployment '{dep.name}' returned a body that is not JSON", deployment=dep.name
                               ) from None


def bad_body(dep: Deployment, what: str, body: bytes | str | None = None) -> ConnectionFailed:
    """A body that is not the protocol: the client hears what was wrong, the log keeps an excerpt."""
    if body is not None:
        log_body(dep, what, body)
    return ConnectionFailed(f"deployment '{dep.name}' {what}", deployment=dep.name)
