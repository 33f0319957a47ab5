"""The dashboard's static files (server/ui/), served at `/ui`.

The files ship inside the package and are read once at install: a request is a dict lookup. The
page itself needs no key (it is a login form and scripts); everything it shows comes from the
admin stats API with the master key. Our own files are revalidated on every load (ETag, 304), the
vendored chart library is cached for a day. A strict content security policy allows nothing but
this origin: no CDN, no inline script.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from .http import Receive, Scope, Send, content_length, raw_header

if TYPE_CHECKING:
    from .app import App

UI_DIR = Path(__file__).parent / "ui"
TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
         ".css": b"text/css; charset=utf-8", ".svg": b"image/svg+xml", ".png": b"image/png",
         ".txt": b"text/plain; charset=utf-8"}
_COMMON = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY"),
           (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                        b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")]


class File:
    __slots__ = ("body", "etag", "headers")

    def __init__(self, body: bytes, content_type: bytes, cache: bytes) -> None:
        self.body = body
        self.etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        self.headers = [(b"content-type", content_type), (b"cache-control", cache), (b"etag", self.etag),
                        content_length(body), *_COMMON]


def load_files(root: Path = UI_DIR) -> dict[str, File]:
    """URL path → file, for every servable file under `root` (licence files included)."""
    files: dict[str, File] = {}
    for path in sorted(root.rglob("*")):
        ctype = TYPES.get(path.suffix) or (b"text/plain; charset=utf-8" if "LICENSE" in path.name else None)
        if not path.is_file() or ctype is None:
            continue
        rel = path.relative_to(root).as_posix()
        cache = b"public, max-age=86400" if rel.startswith("vendor/") else b"no-cache"
        files["/ui/" + rel] = File(path.read_bytes(), ctype, cache)
    files["/ui"] = files["/ui/index.html"]
    return files


def install(app: App) -> None:
    files = load_files()

    async def serve(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        path = scope["path"]
        f = files.get(path.rstrip("/") if path != "/ui/" else "/ui")
        if f is None:
            from ..errors import NotFound

            raise NotFound(f"no dashboard file {path}")
        if raw_header(scope, b"if-none-match") == f.etag:
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", f.etag), (b"cache-control", f.headers[1][1])]})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": f.headers})
        await send({"type": "http.response.body", "body": f.body})

    app.add_route("GET", "/ui", serve)
    app.add_prefix_route("GET", "/ui/", serve)
