"""The response cache the gateway calls: plan (policy + key), lookup (exact, then semantic), store.

The request path pays nothing when no group caches and the request carries no directive (one
attribute test). A lookup is one backend get (a dict lookup in memory; a worker-thread query for
SQLite); a semantic miss adds one embedding of the last user turn and the scan of its scope, both in
one worker-thread call, the vector reused when the answer is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ..types import ChatRequest, ChatResponse, RouteDecision
from . import codec
from .backends import Backend, Entry, open_backend
from .key import exact_key, last_user_text, semantic_scope
from .policy import Decision, GroupPolicy, decide, group_policy
from .semantic import SemanticIndex, embed_turn, nearest
from .settings import CacheOverride, CacheSettings

if TYPE_CHECKING:
    import numpy as np

    from ..embed.backends import Embedder
    from ..state.settings import StateSettings

log = logging.getLogger("modelyard.cache")


class Look:
    """One request's cache plan, and what the lookup found."""

    __slots__ = ("decision", "entry", "group", "key", "kind", "scope", "similarity", "tenant", "text", "vector")

    def __init__(self, decision: Decision, key: str, tenant: str, group: str, scope: str | None,
                 text: str | None) -> None:
        self.decision, self.key, self.tenant, self.group = decision, key, tenant, group
        self.scope, self.text = scope, text
        self.vector: np.ndarray | None = None
        self.entry: Entry | None = None
        self.kind: str | None = None  # hit | semantic-hit | miss, once a lookup ran
        self.similarity: float | None = None

    @property
    def saved_usd(self) -> float:
        """What the cached answer cost when it was produced."""
        return self.entry.cost_usd if self.entry is not None else 0.0

    def response(self, request_id: str, model: str) -> tuple[ChatResponse, RouteDecision]:
        """The hit as a fresh response (cost 0, served by the deployment that produced it) and its
        routing record (strategy `cache`)."""
        e = self.entry
        assert e is not None
        resp = codec.decode(e.body, f"chatcmpl-{request_id.removeprefix('req_')}")
        resp.deployment = e.deployment
        resp.cache, resp.cache_similarity = self.kind, self.similarity
        reason = "exact cache hit" if self.similarity is None else f"semantic cache hit ({self.similarity:.3f})"
        resp.decision = decision = RouteDecision(model=model, deployment=e.deployment, strategy="cache",
                                                 reason=reason)
        return resp, decision


class ResponseCache:
    def __init__(self, settings: CacheSettings, overrides: Mapping[str, CacheOverride | None],
                 deployments: Collection[str], state: StateSettings | None = None) -> None:
        self.settings = settings
        url = settings.url or (state.url if state is not None and state.shared else None)
        self.backend: Backend = open_backend(
            settings.backend, path=settings.path, max_entries=settings.max_entries, url=url,
            fail_closed=state is not None and state.on_failure.cache == "fail_closed",
            timeout_s=state.timeout_s if state is not None else 0.5)
        self._default = group_policy(settings, None)
        self._policies: dict[str, GroupPolicy] = {g: group_policy(settings, o) for g, o in overrides.items() if o}
        # nothing configured to cache: only a request's own directive turns the cache on
        self.idle = all(p.mode == "off" for p in (self._default, *self._policies.values()))
        self._deployments = frozenset(deployments)
        self._embedder: Embedder | None = None
        self._embed_failed: str | None = None
        self.index: SemanticIndex | None = None
        self.hits = self.semantic_hits = self.misses = self.stores = 0
        self.saved_usd = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.backend.start()
        if hasattr(self.backend, "on_vectors"):  # a shared backend: other replicas' semantic entries
            self.backend.on_vectors = self._add_vectors
        if any(p.mode == "semantic" for p in (self._default, *self._policies.values())):
            await self._load_embedder()  # a config asks for it: fail at start-up, not on a request
            if self._embed_failed:
                from ..embed.backends import EmbeddingError

                raise EmbeddingError(f"cache.mode semantic: {self._embed_failed}")
        self._add_vectors(await self.backend.vectors(time.time()))

    def _add_vectors(self, vectors: list[tuple[str, str, bytes]]) -> None:
        """Stored vectors (at start-up; from other replicas as they store them) into the index."""
        if vectors:
            import numpy as np

            index = self._index()
            for key, scope, vec in vectors:
                if len(vec) == 4 * index.dim:
                    index.add(scope, key, np.frombuffer(vec, dtype=np.float32))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backend.close()

    async def _load_embedder(self) -> Embedder | None:
        if self._embedder is None and self._embed_failed is None:
            from ..embed.backends import EmbeddingError, get_embedder

            try:
                self._embedder = await asyncio.to_thread(get_embedder, self.settings.semantic.embedding)
            except EmbeddingError as e:
                self._embed_failed = str(e)
                log.warning("semantic cache unavailable, caching exactly only: %s", e)
        return self._embedder

    def _index(self) -> SemanticIndex:
        if self.index is None:
            from ..embed.backends import DIMS

            self.index = SemanticIndex(DIMS[self.settings.semantic.embedding])
        return self.index

    # --- the request path -----------------------------------------------------------------------
    def plan(self, route: str, req: ChatRequest) -> Look | None:
        """What the cache does for this request (None: nothing)."""
        if self.idle and not req.metadata:
            return None
        d = decide(self._policies.get(route, self._default), req)
        if d is None:
            return None
        tenant = req.caller.tenant
        scope = text = None
        if d.mode == "semantic" and (not req.tools or d.policy.tools):
            text = last_user_text(req)
            if text is not None and len(text) >= d.policy.min_chars:
                scope = semantic_scope(req, tenant, route, text)
            else:
                text = None
        return Look(d, exact_key(req, tenant, route), tenant, route, scope, text)

    async def lookup(self, look: Look) -> Look:
        """Fill `look.entry` / `kind` / `similarity`; counts the hit or miss."""
        if not look.decision.lookup:
            return look
        now = time.time()
        e = await self.backend.get(look.key, now)
        if e is not None and e.deployment in self._deployments:
            look.entry, look.kind = e, "hit"
            self.hits += 1
            self.saved_usd += e.cost_usd
            return look
        if look.scope is not None and look.text is not None:
            emb = await self._load_embedder()
            best = None
            if emb is not None:
                look.vector, best = await asyncio.to_thread(nearest, emb, look.text, self.index, look.scope)
            if best is not None and look.vector is not None and self.index is not None:
                # the scan ran beside the loop's adds and evictions: trust only the similarity now
                sim = self.index.similarity(look.scope, best[0], look.vector)
                if sim is not None and sim >= look.decision.policy.threshold:
                    e = await self.backend.get(best[0], now)
                    if e is None:
                        self.index.remove([best[0]])
                    elif e.deployment in self._deployments:
                        look.entry, look.kind, look.similarity = e, "semantic-hit", round(sim, 4)
                        self.semantic_hits += 1
                        self.saved_usd += e.cost_usd
                        return look
        self.misses += 1
        look.kind = "miss"
        return look

    async def store(self, look: Look, resp: ChatResponse) -> None:
        """Keep a complete, successful answer (called once it is whole). A cache that cannot write
        fails nothing: the answer is the client's either way."""
        d = look.decision
        try:
            if not d.store or (body := codec.encode(resp)) is None:
                return
            if look.scope is not None and look.text is not None and look.vector is None:  # no lookup ran (no-cache)
                emb = await self._load_embedder()
                if emb is not None:
                    look.vector = await asyncio.to_thread(embed_turn, emb, look.text)
            vec = look.vector if look.scope is not None else None
            entry = Entry(look.key, look.tenant, look.group, resp.deployment, resp.cost_usd, body,
                          time.time() + d.policy.ttl_s, look.scope if vec is not None else None,
                          vec.tobytes() if vec is not None else None)
            evicted = await self.backend.put(entry)
            self.stores += 1
            if self.index is not None and evicted:
                self.index.remove(evicted)
            if vec is not None and look.scope is not None:
                self._index().add(look.scope, look.key, vec)
        except Exception:
            log.exception("cache store failed")

    def store_later(self, look: Look, resp: ChatResponse) -> None:
        """`store` from synchronous code (a stream's end): as a task, kept until it is done."""
        task = asyncio.get_running_loop().create_task(self.store(look, resp))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- admin ----------------------------------------------------------------------------------
    async def clear(self, group: str | None = None, tenant: str | None = None) -> int:
        keys = await self.backend.clear(group, tenant)
        if self.index is not None:
            if group is None and tenant is None:
                self.index.clear()
            else:
                self.index.remove(keys)
        return len(keys)

    async def stats(self) -> dict[str, Any]:
        return {"entries": await self.backend.count(time.time()), "hits": self.hits,
                "semantic_hits": self.semantic_hits, "misses": self.misses, "stores": self.stores,
                "saved_usd": round(self.saved_usd, 8), "semantic_entries": len(self.index) if self.index else 0,
                "backend": self.settings.backend, "mode": self.settings.mode,
                "groups": {g: p.mode for g, p in sorted(self._policies.items())}}
