"""Errors of the OpenAI chat-completions protocol (status answers, errors inside 200 bodies and
stream events) mapped onto the taxonomy: our wording, the status and type, the upstream's own
redacted message; raw bodies go to the log only."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..deployment import Deployment
from ..errors import (
    ContentPolicy,
    ContextWindowExceeded,
    ModelyardError,
    RateLimited,
    error_for_status,
    upstream_auth,
)
from .http import bad_body, log_body, retry_after_of, upstream_text


def map_error(status: int, body: bytes, headers: Any, dep: Deployment) -> ModelyardError:
    """An upstream error answer as a taxonomy error naming the deployment (never the key)."""
    log_body(dep, f"answered {status}", body, level=logging.INFO)
    err = error_object(body)
    message = code = etype = None
    if err is not None:
        message, code, etype = err.get("message"), err.get("code"), err.get("type")
    # A body that is not a known error shape is never shown: only its status speaks.
    return classify(status, str(message or ""), code, etype, headers, dep, f"answered {status}")


def error_from_payload(doc: dict[str, Any], dep: Deployment) -> ModelyardError:
    """An error sent inside a 200 body or stream event (OpenAI, vLLM, OpenRouter shapes)."""
    err = doc.get("error")
    if not isinstance(err, dict):
        err = {"message": err} if isinstance(err, str) else doc
    code, etype = err.get("code"), err.get("type")
    status = _payload_status(code, etype)
    message = str(err.get("message") or "unknown error")
    return classify(status, message, code, etype, {}, dep, "reported an error")


def error_object(body: bytes) -> dict[str, Any] | None:
    """The `error` object of an error body, if the body is JSON in any of the common shapes."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    err = doc.get("error")
    if isinstance(err, dict):
        return err
    if isinstance(err, str):  # Ollama: {"error": "..."}
        return {"message": err}
    if "message" in doc:  # vLLM: {"object": "error", "message": ..., "type": ..., "code": 400}
        return doc
    return None


_TYPE_STATUS = {"rate_limit_error": 429, "rate_limit_exceeded": 429, "tokens": 429, "requests": 429,
                "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                "not_found_error": 404, "timeout": 408}


def _payload_status(code: Any, etype: Any) -> int:
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    return _TYPE_STATUS.get(code if isinstance(code, str) and code in _TYPE_STATUS else etype, 500)


_POLICY_CODES = frozenset(("content_filter", "content_policy_violation"))
_AUTH_TYPES = frozenset(("authentication_error", "permission_error", "invalid_api_key"))


def classify(status: int, message: str, code: Any, etype: Any, headers: Any, dep: Deployment,
             what: str) -> ModelyardError:
    """Pick the taxonomy class: by error code and message first, then by status. The client sees our
    wording, the status, the error type and the upstream's own (redacted) error message, if any."""
    code_s = code if isinstance(code, str) else None
    etype_s = etype if isinstance(etype, str) else None
    if status in (401, 403) or code_s == "invalid_api_key" or etype_s in _AUTH_TYPES:
        return upstream_auth(dep.name, status, etype_s or code_s)
    message = upstream_text(message, dep.endpoint)
    kind = f" [{etype_s}]" if etype_s and etype_s not in message else ""
    text = f"deployment '{dep.name}' {what}: {message or 'no error message'}{kind}"
    kw: dict[str, Any] = {"deployment": dep.name, "upstream_status": status, "code": code_s}
    if status == 429:
        return RateLimited(text, retry_after=retry_after_of(headers), **kw)
    lower = message.lower()
    if status < 500 and (code_s == "context_length_exceeded" or "context length" in lower
                         or "context_length_exceeded" in lower):
        return ContextWindowExceeded(text, **kw)
    if code_s in _POLICY_CODES or etype in _POLICY_CODES or "content management policy" in lower:
        return ContentPolicy(text, **kw)
    return error_for_status(status, text, retry_after=retry_after_of(headers), deployment=dep.name,
                            code=code_s)


def json_instead_of_stream(raw: bytes, headers: Any, dep: Deployment) -> ModelyardError:
    doc = error_object(raw)
    if doc is not None:
        log_body(dep, "answered JSON instead of an event stream", raw, level=logging.INFO)
        return error_from_payload({"error": doc}, dep)
    return bad_body(dep, "answered JSON instead of an event stream", raw)
