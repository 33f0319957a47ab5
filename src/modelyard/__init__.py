"""modelyard: send every LLM request to the right model.

    import modelyard
    with modelyard.Client() as client:
        r = client.chat("Hello!", model="auto")
        print(r.text, r.deployment, r.cost_usd)

Everything a library user names is here: the clients, the request/response types, every error
class, and the config loader. Names are imported on first use, so `import modelyard` stays cheap
for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("AsyncClient", "Client", "ChatParams"), "client"),
    **dict.fromkeys(("ChatRequest", "ChatResponse", "Choice", "ImagePart", "Message", "RouteDecision", "Scored",
                     "StreamChunk", "TextPart", "Tool", "ToolCall", "ToolCallDelta", "Usage"), "types"),
    **dict.fromkeys(("Auth", "BadRequest", "BudgetExceeded", "ConfigError", "ConnectionFailed", "ContentPolicy",
                     "ContextWindowExceeded", "ModelyardError", "NoCandidate", "NotFound", "PayloadTooLarge",
                     "PermissionDenied", "RateLimited", "Timeout", "Unavailable", "UpstreamAuth"), "errors"),
    "Config": "config",
    **dict.fromkeys(("load_config", "parse_config"), "loader"),
}
__all__ = [
    "AsyncClient",
    "Auth",
    "BadRequest",
    "BudgetExceeded",
    "ChatParams",
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "Client",
    "Config",
    "ConfigError",
    "ConnectionFailed",
    "ContentPolicy",
    "ContextWindowExceeded",
    "ImagePart",
    "Message",
    "ModelyardError",
    "NoCandidate",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RouteDecision",
    "Scored",
    "StreamChunk",
    "TextPart",
    "Timeout",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Unavailable",
    "UpstreamAuth",
    "Usage",
    "__version__",
    "load_config",
    "parse_config",
]

if TYPE_CHECKING:
    from .client import AsyncClient, ChatParams, Client
    from .config import Config
    from .errors import (
        Auth,
        BadRequest,
        BudgetExceeded,
        ConfigError,
        ConnectionFailed,
        ContentPolicy,
        ContextWindowExceeded,
        ModelyardError,
        NoCandidate,
        NotFound,
        PayloadTooLarge,
        PermissionDenied,
        RateLimited,
        Timeout,
        Unavailable,
        UpstreamAuth,
    )
    from .loader import load_config, parse_config
    from .types import (
        ChatRequest,
        ChatResponse,
        Choice,
        ImagePart,
        Message,
        RouteDecision,
        Scored,
        StreamChunk,
        TextPart,
        Tool,
        ToolCall,
        ToolCallDelta,
        Usage,
    )


def __getattr__(name: str) -> Any:  # lazy: `import modelyard` stays cheap for the CLI
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelyard' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
