"""The cache part of the YAML config: top-level `cache:` and the per-group override
`model_groups.<name>.cache`.

Kept here rather than in config.py so the knobs live next to the code that reads them (the same
arrangement as resilience/settings.py); config.py embeds these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["off", "exact", "semantic"]
MODES: tuple[str, ...] = ("off", "exact", "semantic")

# The default cosine threshold: the labelled pairs in tests/data/cache_pairs.jsonl give precision
# 1.0 there (docs/CACHE.md has the curve).
DEFAULT_THRESHOLD = 0.90


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SemanticSettings(_Model):
    """When a request may be answered by a similar earlier one."""

    threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=1)  # cosine similarity of the last user turns
    min_chars: int = Field(20, ge=0)  # shorter last user turns are only cached exactly
    tools: bool = False  # requests that carry tools: exact only unless this is true
    embedding: Literal["minilm-l6-v2-int8", "hash-ngram-v1"] = "minilm-l6-v2-int8"


class SemanticOverride(_Model):
    threshold: float | None = Field(None, gt=0, le=1)
    min_chars: int | None = Field(None, ge=0)
    tools: bool | None = None


class CacheSettings(_Model):
    """Top-level `cache:`. Off unless configured: a cache changes what clients get back."""

    mode: Mode = "off"
    backend: Literal["memory", "sqlite", "redis"] = "memory"  # redis: shared by replicas (backends/redis.py)
    path: str = "modelyard-cache.db"  # backend: sqlite
    url: str | None = None  # backend: redis — its own redis://…; None: the top-level `state` URL
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(10_000, ge=1)
    # Requests with an explicit temperature > 0 ask for variety: cached only when this is true
    # (a request with a `seed` asks for reproducibility and is cached either way).
    sampled: bool = False
    semantic: SemanticSettings = SemanticSettings()


class CacheOverride(_Model):
    """`model_groups.<name>.cache`: any field set here overrides the top-level value for the group."""

    mode: Mode | None = None
    ttl_s: float | None = Field(None, gt=0)
    sampled: bool | None = None
    semantic: SemanticOverride | None = None
