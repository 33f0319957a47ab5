"""The provider-neutral error taxonomy.

Provider adapters translate whatever their upstream says into one of these; nothing above
providers/ ever sees a provider-specific error. Each class carries its HTTP status, whether a
retry on the same deployment may help (`retryable`) and whether another deployment may help
(`fallback`). Messages are written for the caller: they say what went wrong and what to change,
and never contain credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class ModelyardError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    anthropic_type: ClassVar[str] = "api_error"
    retryable: ClassVar[bool] = False
    fallback: ClassVar[bool] = False

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

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return []
        return [(b"retry-after", str(max(1, round(self.retry_after))).encode())]


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
    status = 402  # not 429: SDKs retry 429, and waiting does not refill a budget
    type = "budget_exceeded"
    anthropic_type = "invalid_request_error"


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
    if status in (401,):
        return Auth(message, **kw)
    if status == 403:
        return PermissionDenied(message, **kw)
    if status == 404:
        return NotFound(message, **kw)
    if status == 413:
        return ContextWindowExceeded(message, **kw)
    if status in (408, 504):
        return Timeout(message, **kw)
    if status >= 500 or status == 529:
        return Unavailable(message, **kw)
    return BadRequest(message, **kw)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After / retry-after-ms header value (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import time
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
