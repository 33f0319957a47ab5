"""Transport-level pieces both upstream clients share: response headers by name, and the mapping
of client failures (refused, reset, timed out, not-the-protocol) onto the error taxonomy, naming
the deployment and never the client's own debug text."""

from __future__ import annotations

import re
from typing import Any, Protocol

from wreq import exceptions as wx

from ..errors import ConnectionFailed, ModelyardError, Timeout
from . import h1_client


class ResponseHeaders(Protocol):
    """An answer's headers, looked up by name (either client's)."""

    def get(self, name: str, default: str | None = None) -> str | None: ...


class Headers:
    """wreq's response headers read as `str` (the client hands out memoryviews); only error paths
    and the stream content-type check read them, so nothing is decoded up front, and a response's
    header map is not even built (the client builds one per access) until a header is asked for."""

    __slots__ = ("_map", "_resp")

    def __init__(self, header_map: Any = None, *, resp: Any = None) -> None:
        self._map = header_map
        self._resp = resp  # the client's response, whose `headers` are read on the first `get`

    def get(self, name: str, default: str | None = None) -> str | None:
        if self._resp is not None:
            self._map, self._resp = self._resp.headers, None
        if self._map is None:
            return default
        v = self._map[name]
        return default if v is None else bytes(v).decode("latin-1")


TRANSPORT_ERRORS = (wx.ConnectionError, wx.ConnectionResetError, wx.BodyError, wx.DecodingError,
                     wx.RequestError, wx.TimeoutError, wx.ProxyConnectionError, wx.TlsError,
                     wx.RedirectError, wx.StatusError, wx.BuilderError, wx.RustPanic,
                     h1_client.ConnectFailed, h1_client.Closed, h1_client.BadResponse)


class transport_errors:
    """Turn client/asyncio failures into taxonomy errors that name the deployment.

    A class rather than @contextmanager: it runs on every upstream call, and a plain
    __enter__/__exit__ pair avoids creating a generator each time.
    """

    __slots__ = ("deployment",)

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: object) -> None:
        if e is None or isinstance(e, ModelyardError) or not isinstance(e, Exception):
            return
        raise map_transport(e, self.deployment) from e


_OS_MESSAGE = re.compile(r'message: "([^"]+)"')
_TLS_REASON = re.compile(r'reason: "([A-Z_]+)"')
_KIND = re.compile(r"source: (?:Some\()?(\w+)")


def _cause(e: Exception) -> str:
    """A short reason from the client's error text ("Connection refused"), never its full debug dump."""
    text = str(e)
    if m := _TLS_REASON.search(text):
        hint = " (a private CA: name its PEM file in the deployment's tls_verify)" if "VERIFY" in m.group(1) else ""
        return f"TLS {m.group(1)}{hint}"
    # An https server that requires a client certificate refuses a client without one after the
    # handshake (TLS 1.3): the request is cut off as it is sent, with a reset or no answer at all. (A
    # server closing a kept-alive connection looks the same, hence "if".)
    hint = " (if the server requires a client certificate: the deployment's tls_client_cert)" \
        if "uri: https:" in text and "kind: SendRequest" in text else ""
    if "(IncompleteMessage)" in text:
        return f"closed before answering{hint}"
    m = _OS_MESSAGE.search(text) or _KIND.search(text)
    return (m.group(1) if m else type(e).__name__) + hint


def map_transport(e: Exception, deployment: str) -> ModelyardError | Exception:
    """The taxonomy error for a client failure `e` (`e` itself when it is none of the client's)."""
    if isinstance(e, TimeoutError | wx.TimeoutError) or (isinstance(e, TRANSPORT_ERRORS) and "TimedOut" in str(e)):
        return Timeout(f"deployment '{deployment}' timed out", deployment=deployment)
    if isinstance(e, h1_client.ConnectFailed):
        return ConnectionFailed(f"cannot connect to deployment '{deployment}': {e}", deployment=deployment)
    if isinstance(e, h1_client.Closed | h1_client.BadResponse):
        what = f"{e}" if isinstance(e, h1_client.Closed) else f"failed: {e}"
        return ConnectionFailed(f"deployment '{deployment}' {what}", deployment=deployment)
    if isinstance(e, wx.ConnectionError | wx.ProxyConnectionError | wx.TlsError):
        return ConnectionFailed(f"cannot connect to deployment '{deployment}': {_cause(e)}", deployment=deployment)
    if isinstance(e, wx.ConnectionResetError | wx.BodyError | wx.DecodingError | ConnectionError):
        return ConnectionFailed(f"deployment '{deployment}' closed the connection: {_cause(e)}",
                                deployment=deployment)
    if isinstance(e, TRANSPORT_ERRORS):
        return ConnectionFailed(f"deployment '{deployment}' failed: {type(e).__name__}: {_cause(e)}",
                                deployment=deployment)
    return e


