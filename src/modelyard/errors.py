"""The provider-neutral error taxonomy.

Provider adapters translate whatever their upstream says into one of these; nothing above
providers/ ever sees a provider-specific error. Each class carries its HTTP status, whether a
retry on the same deployment may help (`retryable`) and whether another deployment may help
(`fallback`). Messages are written for the caller: they say what went wrong and what to change,
and never contain credentials.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar


class ModelyardError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    anthropic_type: ClassVar[str] = "api_error"
    retryable: ClassVar[bool] = False
    fallback: ClassVar[bool] = False
    experiment: str | None = None  # "name=variant" of the request it ended (x-modelyard-experiment)

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        deployment: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.deployment = deployment
        self.upstream_status = upstream_status

    def headers(self) -> list[tuple[bytes, bytes]]:
        return []

    def openai_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code or self.type}}

    def anthropic_body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


# --- upstream failures: may be retried and/or fall back -----------------------------------------

class RateLimited(ModelyardError):
    status = 429
    type = "rate_limit_error"
    anthropic_type = "rate_limit_error"
    retryable = True
    fallback = True
    limit_scope: str | None = None  # key|team|user|deployment: refused by the gateway's own limit, not upstream

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = clamp_retry_after(retry_after)

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return []
        return [(b"retry-after", str(max(1, math.ceil(self.retry_after))).encode())]  # never too early


class Timeout(ModelyardError):
    status = 504
    type = "timeout"
    anthropic_type = "timeout_error"
    retryable = True
    fallback = True


class Unavailable(ModelyardError):
    """The upstream answered 5xx or said it is overloaded."""

    status = 503
    type = "upstream_unavailable"
    anthropic_type = "overloaded_error"
    retryable = True
    fallback = True


class ConnectionFailed(ModelyardError):
    """No usable answer: refused, reset, or a body that is not the protocol."""

    status = 502
    type = "upstream_connection_error"
    anthropic_type = "api_error"
    retryable = True
    fallback = True


class ContextWindowExceeded(ModelyardError):
    status = 400
    type = "context_length_exceeded"
    anthropic_type = "invalid_request_error"
    fallback = True  # to a larger-context model


class ContentPolicy(ModelyardError):
    status = 400
    type = "content_policy_violation"
    anthropic_type = "invalid_request_error"
    fallback = True  # to a configured model


class Auth(ModelyardError):
    status = 401
    type = "authentication_error"
    anthropic_type = "authentication_error"


class PermissionDenied(ModelyardError):
    status = 403
    type = "permission_error"
    anthropic_type = "permission_error"


class UpstreamAuth(Auth):
    """An upstream refused the gateway's own credentials for a deployment (its 401/403): the
    operator's problem, never the client's key, so a 502. Not retried, and (as any auth failure)
    no fallback: the breaker takes the deployment out of rotation instead (breaker.counts_against)."""

    status = 502
    type = "upstream_auth_error"
    anthropic_type = "api_error"


class BadRequest(ModelyardError):
    status = 400
    type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class NotFound(ModelyardError):
    status = 404
    type = "not_found_error"
    anthropic_type = "not_found_error"


class PayloadTooLarge(ModelyardError):
    status = 413
    type = "request_too_large"
    anthropic_type = "request_too_large"


class BudgetExceeded(ModelyardError):
    """A key's, team's or user's budget cannot cover the request (accounting/budgets.py)."""

    status = 429
    type = "budget_exceeded"
    anthropic_type = "rate_limit_error"

    def headers(self) -> list[tuple[bytes, bytes]]:
        # the OpenAI and Anthropic SDKs retry a 429 unless told not to: waiting does not refill a budget
        return [(b"x-should-retry", b"false")]


class NoCandidate(ModelyardError):
    """Routing found no deployment that satisfies the request's constraints."""

    status = 422
    type = "no_candidate"
    anthropic_type = "invalid_request_error"


class ConfigError(Exception):
    """Configuration problems, all of them, one line each: `file: field.path: what is wrong`.

    `path` and `message` are the first problem's; `problems` holds every (path, message) pair.
    """

    def __init__(self, file: str, path: str, message: str, *, more: Sequence[tuple[str, str]] = ()) -> None:
        self.file, self.path, self.message = file, path, message
        self.problems: list[tuple[str, str]] = [(path, message), *more]
        super().__init__("\n".join(f"{file}: {p}: {m}" if p else f"{file}: {m}" for p, m in self.problems))

    @classmethod
    def from_problems(cls, file: str, problems: Sequence[tuple[str, str]]) -> ConfigError:
        (path, message), *more = problems
        return cls(file, path, message, more=more)


def error_for_status(status: int, message: str, *, retry_after: float | None = None,
                     deployment: str | None = None, code: str | None = None) -> ModelyardError:
    """Map an upstream HTTP status to the taxonomy (adapters refine by error body first)."""
    kw: dict[str, Any] = {"deployment": deployment, "upstream_status": status, "code": code}
    if status == 429:
        return RateLimited(message, retry_after=retry_after, **kw)
    if status in (401, 403):
        return upstream_auth(deployment, status, code)
    if status == 404:
        return NotFound(message, **kw)
    if status == 413:
        return ContextWindowExceeded(message, **kw)
    if status in (408, 504):
        return Timeout(message, **kw)
    if status >= 500 or status == 529:
        return Unavailable(message, **kw)
    return BadRequest(message, **kw)


def upstream_auth(deployment: str | None, status: int | None, etype: str | None) -> UpstreamAuth:
    """The error for an upstream that refused the gateway's credentials: our wording, the upstream's
    status and error type, none of its text (which may quote the key)."""
    what = f" ({status}{' ' + etype if etype else ''})" if status else f" ({etype})" if etype else ""
    return UpstreamAuth(f"deployment '{deployment}' refused the gateway's credentials{what}: the key or "
                        "headers configured for this deployment are wrong, expired or lack access; "
                        "nothing in the request can fix this", deployment=deployment, upstream_status=status,
                        code=UpstreamAuth.type)


# Longest wait an upstream's Retry-After may ask for; a longer (or infinite) one is read as this.
MAX_RETRY_AFTER_S = 3600.0


def clamp_retry_after(seconds: float | None) -> float | None:
    """`seconds` as a usable wait: NaN (or not a number) is no hint, negatives are 0, anything
    longer than an hour (inf included) is an hour."""
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, int | float) or math.isnan(seconds):
        return None
    return min(max(float(seconds), 0.0), MAX_RETRY_AFTER_S)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header value (delta-seconds or HTTP date), clamped; None if unusable."""
    if not value:
        return None
    try:
        return clamp_retry_after(float(value))
    except ValueError:
        pass
    import time
    from email.utils import parsedate_to_datetime

    try:
        return clamp_retry_after(parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


# --- redaction -------------------------------------------------------------------------------------
# What an upstream says can quote what it was sent or leaked from its own side. Client errors never
# carry an upstream's body; structured error messages and the log's excerpts go through `redact`.

REDACTED = "[redacted]"
EXCERPT_CHARS = 500  # the most of an upstream body the log keeps
_CREDENTIAL_SHAPES = re.compile(
    r"(?P<url>\b[a-z][a-z0-9+.\-]*://)[^/\s:@]*:[^/\s@]*@"  # scheme://user:password@
    r"|(?P<bearer>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{6,}"  # Authorization values
    r"|(?P<kv>\b(?:api[_-]?key|x-api-key|x-goog-api-key|api-key|access[_-]?token|token|secret|password|passwd)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]{4,}"  # key=value, "password": "..."
    r"|\b(?:sk-ant-|sk-|gsk_|xai-|AIza|hf_|ghp_|github_pat_|pplx-|r8_)[A-Za-z0-9_\-]{8,}",  # known key prefixes
    re.IGNORECASE,
)


def _keep_prefix(m: re.Match[str]) -> str:
    prefix = m.group("url") or m.group("bearer") or m.group("kv")
    return (prefix or "") + REDACTED + ("@" if m.group("url") else "")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secret values and without anything shaped like a credential:
    `scheme://user:password@`, bearer/basic tokens, `key=value` pairs of credential names and keys
    with a known prefix (sk-, sk-ant-, gsk_, xai-, AIza, hf_, ghp_, ...)."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return _CREDENTIAL_SHAPES.sub(_keep_prefix, text)


def excerpt(body: bytes | str, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS) -> str:
    """A redacted excerpt of an upstream body for the log, at most `limit` characters. Secrets are
    removed before the cut, so no cut can leave half a key behind."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    text = redact(text[: max(16 * limit, 8192)], secrets)
    return text if len(text) <= limit else text[: limit - 1] + "…"
