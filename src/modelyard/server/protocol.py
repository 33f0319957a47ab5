"""How `modelyard serve` (and the tests' servers) run uvicorn: the gateway's own HTTP/1.1
protocol (server/h1.py) with the server's connection limits (server/limits.py).

uvicorn stays the runner (sockets, workers, lifespan, signals, graceful shutdown); only its
`http=` protocol class is ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .h1 import H1Protocol
from .limits import Limits, Sweeper

if TYPE_CHECKING:
    from ..config import ServerConfig

__all__ = ["H1Protocol", "Limits", "configure", "limits_of", "protocol_class", "uvicorn_options"]


def configure(limits: Limits) -> None:
    """Give H1Protocol itself these limits: for worker processes, where uvicorn imports the class
    by name (a class made by `protocol_class` cannot be sent to them)."""
    H1Protocol.limits = limits
    H1Protocol.sweeper = Sweeper(limits.header_timeout_s)


def protocol_class(limits: Limits) -> type[H1Protocol]:
    """The protocol class for one server (uvicorn's `http=`), with its limits and its sweeper."""
    return type("H1Protocol", (H1Protocol,), {"limits": limits, "sweeper": Sweeper(limits.header_timeout_s)})


def max_connections_default() -> int:
    """Half the process's open-file limit: the other half stays for upstream connections, the
    request log and the rest, so a flood of clients cannot starve them."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 512
    return 512 if soft == resource.RLIM_INFINITY or soft <= 0 else max(16, soft // 2)


def limits_of(server: ServerConfig) -> Limits:
    return Limits(header_timeout_s=server.header_timeout_s, max_header_bytes=server.max_header_bytes,
                  max_headers=server.max_headers, max_connections=server.max_connections or max_connections_default())


def uvicorn_options(server: ServerConfig, *, workers: bool = False) -> dict[str, Any]:
    """The uvicorn settings that serve `server`'s limits (`modelyard serve` and tests run these).
    `workers`: the protocol by name; each worker then calls `configure(limits_of(server))`."""
    http: Any = f"{H1Protocol.__module__}:H1Protocol" if workers else protocol_class(limits_of(server))
    # Nothing in the app reads the client address from proxies' headers, so uvicorn's
    # X-Forwarded-For rewriting (a middleware call on every request) is off.
    return {"http": http, "timeout_keep_alive": server.keep_alive_timeout_s,
            "lifespan": "on", "access_log": False, "log_level": "warning", "server_header": False,
            "proxy_headers": False}
