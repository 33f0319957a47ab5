"""The shapes of the YAML configuration: pydantic models, `${VAR}` interpolation, key references,
and errors that name the file and the field (`config.yaml: server.port: ...`), every problem at once.

This module knows no subsystem: cross-references (groups → deployments, strategy options, pipelines)
are checked by loader.py, which is what loads a config that can run. Key references
(`env:OPENAI_API_KEY`) stay references in the config object; `secret_refs.resolve_secret` turns them
into keys once at start-up, and no error ever contains a key.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .addresses import webhook_problem
from .cache.settings import CacheOverride, CacheSettings
from .errors import ConfigError
from .resilience.settings import HedgeSettings, ResilienceSettings, RetrySettings
from .secret_refs import REFERENCE_PREFIXES, literal_key_problems
from .state.settings import StateSettings

PROVIDERS = ("openai", "azure", "anthropic", "gemini", "sim", "local", "llamacpp")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SimSettings(_Model):
    """How a simulated deployment behaves (see providers/sim.py)."""

    ttft_ms: float | None = None  # None: the catalog card's prior
    tokens_per_s: float | None = None
    jitter: float = 0.2  # relative spread of latencies
    failure_rate: float = Field(0.0, ge=0, le=1)
    rate_limit_rate: float = Field(0.0, ge=0, le=1)
    zero_latency: bool = False
    quality: float | None = None  # 0..1, how often the sim gives its "good" answer
    answers: dict[str, str] = {}  # scripted answers: prompt substring -> reply


class ClientCertConfig(_Model):
    """A client certificate for https upstreams that ask for one (mutual TLS)."""

    cert: str  # PEM file: the certificate chain, leaf first
    key: str  # PEM file: its private key, PKCS#8 (`openssl pkcs8 -topk8 -nocrypt -in key.pem`)

    @field_validator("cert", "key")
    @classmethod
    def _file(cls, v: str) -> str:
        if not Path(v).is_file():
            raise ValueError(f"no such file: {v}")
        return v


class DeploymentConfig(_Model):
    provider: Literal["openai", "azure", "anthropic", "gemini", "sim", "local", "llamacpp"]
    model: str  # the upstream's model name
    model_path: str | None = None  # llamacpp: the GGUF file (providers/llamacpp.py)
    embedding: bool = False  # llamacpp: also serve /v1/embeddings (its own lazily loaded instance)
    api_base: str | None = None
    api_key: str | None = None  # a reference: env:NAME, or ${NAME}
    api_version: str | None = None  # Azure OpenAI / Anthropic version header
    headers: dict[str, str] = {}
    card: str | None = None  # catalog entry; defaults to `model`
    weight: float = Field(1.0, ge=0)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    max_concurrency: int | None = Field(None, ge=1)
    tags: list[str] = []
    timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    ttft_timeout_s: float | None = Field(None, gt=0)  # streams: first chunk within this, else fall back
    idle_timeout_s: float | None = Field(120.0, gt=0)  # streams: max silence between chunks
    health_check: bool = False  # probe it in the background (resilience.health_checks)
    # https upstreams: the system's roots (true), a PEM file of the CAs to trust instead (a
    # self-hosted server behind a private CA), or false (no verification: a warning at start-up)
    tls_verify: bool | str = True
    tls_client_cert: ClientCertConfig | None = None  # mutual TLS: the certificate the gateway presents
    sim: SimSettings = SimSettings()

    @field_validator("tls_verify")
    @classmethod
    def _ca_file(cls, v: bool | str) -> bool | str:
        if isinstance(v, str) and not Path(v).is_file():
            raise ValueError(f"no such file: {v} (a PEM file of the CA certificates to trust, or true / false)")
        return v

    @field_validator("embedding")
    @classmethod
    def _embedding_llamacpp(cls, v: bool, info: ValidationInfo) -> bool:
        provider = info.data.get("provider")
        if v and provider != "llamacpp":
            raise ValueError(f"only provider llamacpp takes it, not {provider} (openai, gemini and local "
                             "deployments serve /v1/embeddings without it)")
        return v


class ModelGroupConfig(_Model):
    deployments: list[str] = Field(min_length=1)
    strategy: str = "first-healthy"  # any registered strategy: docs/ROUTING.md (routing/strategies/)
    options: dict[str, Any] = {}  # the strategy's options + group constraints (routing/validate.py)
    fallbacks: list[str] = []
    rate_limit_fallbacks: list[str] = []  # typed fallback chains (resilience/policy.py)
    context_window_fallbacks: list[str] = []
    content_policy_fallbacks: list[str] = []
    retry: RetrySettings | None = None  # fields set here override resilience.retry
    timeout_s: float | None = Field(None, gt=0)  # request deadline; default resilience.timeout_s
    hedge: HedgeSettings | None = None  # set: requests to this group are hedged
    description: str | None = None
    cache: CacheOverride | None = None  # fields set here override the top-level cache: for this group
    log_content: bool | None = None  # keep prompts/answers in the request log (None: request_log.log_content)


class RequestLogConfig(_Model):
    enabled: bool = True
    path: str = "modelyard.db"
    flush_interval_s: float = Field(0.5, gt=0)
    batch_size: int = Field(500, ge=1)
    max_buffer_rows: int = Field(10_000, ge=1)  # rows held in memory while the database refuses writes
    overflow: Literal["spill", "drop"] = "spill"  # past the buffer: <path>.spill-<pid>.jsonl, or count a loss
    max_spill_mb: float = Field(100.0, ge=0)  # per process; past it, rows are dropped and counted
    busy_timeout_s: float = Field(5.0, ge=0)  # SQLite's wait on a locked database, per write
    retry_max_interval_s: float = Field(5.0, gt=0)  # backoff cap between retries of a failed write
    close_timeout_s: float = Field(5.0, ge=0)  # shutdown: time to write what is left before spilling it
    retention_days: float | None = Field(None, gt=0)  # rows older than this are deleted (store/retention.py)
    # Prompts and answers (store/content.py): off unless a key, a group or this default says so.
    log_content: bool = False
    content_retention_days: float | None = Field(7.0, gt=0)  # then prompt/response (and feedback text) cleared
    max_content_chars: int = Field(32_768, ge=256)  # per field; longer is cut, with a marker saying so


class ResponsesConfig(_Model):
    """Stored responses of `POST /v1/responses` (store: true), kept in the request log's database."""

    retention_days: float = Field(30.0, gt=0)  # a stored response is gone this long after it was made


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    master_key: str | None = None  # a reference (env:NAME or ${NAME}) or, for local use, a literal
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # Slow, idle and flooding clients (docs/SECURITY.md): 408 / 431 / 503, connection closed.
    header_timeout_s: float = Field(10, gt=0)  # request line + headers must arrive within this
    body_timeout_s: float = Field(60, gt=0)  # the whole body within this once the headers are in
    keep_alive_timeout_s: int = Field(5, ge=1)  # an idle keep-alive connection is closed after this
    max_header_bytes: int = Field(32 * 1024, ge=1024)  # request line + headers
    max_headers: int = Field(100, ge=8)
    max_connections: int | None = Field(None, ge=1)  # open client connections; default half the fd limit
    request_log: RequestLogConfig = RequestLogConfig()
    responses: ResponsesConfig = ResponsesConfig()
    workers: int = Field(1, ge=1)
    # Linux scheduling of the upstream client's I/O threads (providers/io_threads.py): batch = they
    # wait for the event loop instead of preempting it; normal = the kernel's default; auto = batch
    # while several requests are in flight, normal otherwise. One policy per process.
    io_threads: Literal["auto", "batch", "normal"] = "auto"
    # Which client calls http:// upstreams (https:// ones always go through wreq's I/O threads):
    # loop = the in-loop HTTP/1.1 client (providers/h1_client.py), wreq = as https:// ones.
    plain_http: Literal["loop", "wreq"] = "loop"
    # GET /metrics (docs/OBSERVABILITY.md): the master key, this key (a reference like master_key), or
    # anyone when metrics_public is true
    metrics_key: str | None = None
    metrics_public: bool = False
    # /v1/files + /v1/batches (docs/BATCH.md): their directory; default `modelyard-batches` next to the
    # request log. Replicas that mount one shared directory (flock must work on it) share them.
    batch_dir: str | None = None

    @field_validator("master_key")
    @classmethod
    def _master_key_not_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():  # `${X:-}` or `${X}` with X="": authentication would be off
            raise ValueError("is empty: set the variable it references to the key, or leave master_key out "
                             "to serve without authentication")
        return v


class CardOverride(_Model):
    provider: str | None = None
    input_per_m: float | None = Field(None, ge=0)
    output_per_m: float | None = Field(None, ge=0)
    cached_input_per_m: float | None = Field(None, ge=0)
    context_window: int | None = Field(None, ge=1)
    max_output: int | None = Field(None, ge=1)
    capabilities: list[Literal["tools", "vision", "json", "streaming"]] | None = None
    quality: dict[str, float] | None = None
    ttft_ms: float | None = Field(None, ge=0)
    tokens_per_s: float | None = Field(None, gt=0)
    cache_write_per_m: float | None = Field(None, ge=0)
    tiers: list[PriceTierConfig] | None = None  # long-context prices
    checked: dt.date | None = None  # YYYY-MM-DD: when the prices were checked
    cache_write_1h_per_m: float | None = Field(None, ge=0)  # 1-hour cache writes (Anthropic: 2x input)
    source: str | None = None  # where the prices come from


class PriceTierConfig(_Model):
    above_input_tokens: int = Field(ge=0)
    input_per_m: float = Field(ge=0)
    output_per_m: float = Field(ge=0)
    cached_input_per_m: float | None = Field(None, ge=0)
    cache_write_per_m: float | None = Field(None, ge=0)
    cache_write_1h_per_m: float | None = Field(None, ge=0)


# --- pipelines (modes/pipeline.py compiles and checks them; docs/EXECUTION.md) ---------------

class PipelineRouteConfig(_Model):
    by: str  # an earlier step (or step.field) whose output picks the model ("on" is a YAML boolean)
    cases: dict[str, str] = Field(min_length=1)  # output (case-insensitive) -> model or group
    default: str  # the model when no case matches


class PipelineStepConfig(_Model):
    name: str | None = None
    model: str | None = None  # deployment or group
    route: PipelineRouteConfig | None = None  # instead of model: chosen by an earlier output
    ensemble: dict[str, Any] | None = None  # a multi-model mode for this step: {mode: vote, models: [...]}
    system: str | None = None  # template
    prompt: str | None = None  # template: {{ input }}, {{ <input> }}, {{ <step> }}, {{ <step>.field }}
    parse: Literal["text", "json", "regex"] | None = None  # default: json with a schema, else text
    pattern: str | None = None  # parse: regex
    schema_: dict[str, Any] | None = Field(None, alias="schema")  # JSON schema the output must fit
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    optional: bool = False  # a failure leaves the output empty instead of failing the request
    parallel: list[PipelineStepConfig] | None = None  # a block of steps run at the same time


class PipelineConfig(_Model):
    description: str | None = None
    inputs: list[str] = []  # named inputs besides {{ input }} (the last user message)
    steps: list[PipelineStepConfig] = Field(min_length=1)
    output: str | None = None  # the step whose output is the answer (default: the last)
    budget_usd: float | None = Field(None, gt=0)  # stop before a step once this much is spent


class KeyConfig(_Model):
    """A virtual key declared in the file (accounting/keys.py); the key itself stays in the environment."""

    key: str  # env:NAME or file:/path, never the key itself
    name: str | None = None  # required in the list form; in the mapping form, the entry's name
    team: str | None = None
    user: str | None = None
    budget_usd: float | None = Field(None, gt=0)
    budget_period: Literal["daily", "weekly", "monthly", "total"] = "monthly"
    soft_budget_pct: float | None = Field(None, gt=0, lt=100)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    models: list[str] | None = None  # groups, deployments, pipelines; None: all
    expires_at: datetime | None = None
    metadata: dict[str, Any] = {}
    log_content: bool | None = None  # keep this key's prompts/answers (None: its group's or the default)

    @field_validator("key")
    @classmethod
    def _key_is_a_reference(cls, v: str) -> str:
        if not v.startswith(REFERENCE_PREFIXES) or len(v) < 5:
            raise ValueError("must be a reference, env:NAME or file:/path (the key itself never sits in the file)")
        return v


class AlertsConfig(_Model):
    """Budget and spend-rate alerts (accounting/alerts.py): logged, and POSTed as JSON to `webhooks`."""

    webhooks: list[str] = []
    allow_private: bool = False  # allow loopback, private and link-local webhook addresses
    thresholds: list[float] = [50, 80, 100]  # % of a budget; a budget's soft_pct is added
    anomaly_factor: float = Field(3.0, gt=1)  # last hour's spend > this × the trailing 24 h hourly average
    anomaly_min_usd: float = Field(1.0, ge=0)  # ... and at least this much
    anomaly_scopes: list[Literal["global", "key", "team", "user"]] = ["global", "key", "team"]
    anomaly_max_scopes: int = Field(5000, ge=0)  # keys, teams, users tracked, each (a 1.2 KB ring apiece)
    retries: int = Field(5, ge=0)  # per webhook delivery, after the first try
    backoff_s: float = Field(1.0, gt=0)  # first wait between tries; doubles each time
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _webhooks_public(self) -> AlertsConfig:
        problems = [f"webhooks[{i}]: {why}" for i, url in enumerate(self.webhooks)
                    if (why := webhook_problem(url, self.allow_private))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TelemetryConfig(_Model):
    """Metrics, traces and request logs (telemetry/, docs/OBSERVABILITY.md)."""

    metrics: bool = True  # Prometheus metrics at GET /metrics
    otlp_endpoint: str | None = None  # OpenTelemetry traces over OTLP/HTTP (the `otel` extra), e.g. http://host:4318
    service_name: str = "modelyard"
    record_content: bool = False  # put prompts and answers on spans
    log_requests: bool = True  # `modelyard serve`: one line per request on stderr (--log-format text|json)


# --- experiments (experiments/ builds and checks them; docs/OBSERVABILITY.md) ----------------

class VariantConfig(_Model):
    """What a variant changes in its group; an empty variant is the group as configured."""

    deployments: list[str] | None = Field(None, min_length=1)
    strategy: str | None = None
    options: dict[str, Any] | None = None  # default: the group's when the strategy is the group's, else none


class JudgeScoringConfig(_Model):
    model: str  # a group or deployment that grades the answers
    sample_pct: float = Field(10.0, gt=0, le=100)  # share of each variant's answers it grades
    criteria: str | None = None  # what a good answer is, told to the judge


class ExperimentConfig(_Model):
    group: str
    variants: dict[str, VariantConfig] = Field(min_length=2)
    split: dict[str, float] = {}  # variant -> percent of units; default equal shares; control gets the rest
    unit: Literal["user", "key", "request"] = "user"
    metric: Literal["cost", "latency", "feedback", "judge"] = "cost"
    min_effect: float | None = Field(None, gt=0)  # smallest difference worth finding: relative, or score points
    judge: JudgeScoringConfig | None = None
    enabled: bool = True  # false: no new assignments; the report still reads the logged ones


class Config(_Model):
    """The whole file's shape. Cross-references (groups → deployments, strategy options, pipelines)
    are checked by loader.py, which knows the subsystems that own them."""

    server: ServerConfig = ServerConfig()
    deployments: dict[str, DeploymentConfig] = {}
    model_groups: dict[str, ModelGroupConfig] = {}
    catalog: dict[str, CardOverride] = {}
    resilience: ResilienceSettings = ResilienceSettings()
    pipelines: dict[str, PipelineConfig] = {}
    keys: dict[str, KeyConfig] | list[KeyConfig] = {}  # virtual keys kept in git (accounting/keys.py)
    alerts: AlertsConfig = AlertsConfig()
    cache: CacheSettings = CacheSettings()  # response caches (cache/settings.py)
    telemetry: TelemetryConfig = TelemetryConfig()
    experiments: dict[str, ExperimentConfig] = {}
    # The task classifier routing reads (docs/ROUTING.md): `cheap` (sparse features, µs) or `minilm`
    # (plus a head over the MiniLM embedding: more accurate on real prompts, ~5 ms; the `learned` extra)
    task_classifier: Literal["cheap", "minilm"] = "cheap"
    # Where replicas meet (docs/SCALING.md): shared state (limits, budgets, breakers, health, caches) and
    # shared records (keys, the request/spend log, feedback, responses). The defaults keep one process
    # self-contained: state in memory, records in the request log's SQLite file.
    state: StateSettings = StateSettings()  # "memory" | a Redis URL | {url:, on_failure:} (state/settings.py)
    store: str | None = None  # None: sqlite at server.request_log.path | sqlite:///path | postgresql://…

    @field_validator("store")
    @classmethod
    def _store_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must be sqlite:///path/to/file.db or a Postgres URL (postgresql://user@host/db)")
        return v

    def declared_keys(self) -> list[tuple[str, KeyConfig]]:
        """(name, entry) of every `keys:` entry, whichever form the file used."""
        if isinstance(self.keys, dict):
            return list(self.keys.items())
        return [(k.name or str(i), k) for i, k in enumerate(self.keys)]


Problem = tuple[str, str]  # (field path, message): one line of a ConfigError


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def interpolate(value: Any, environ: Mapping[str, str] | None = None, *, file: str = "<config>") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree; a ConfigError
    lists every variable that is not set."""
    problems: list[Problem] = []
    out = _interpolate(value, os.environ if environ is None else environ, "", problems)
    if problems:
        raise ConfigError.from_problems(file, problems)
    return out


def _interpolate(value: Any, env: Mapping[str, str], path: str, problems: list[Problem]) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            return value

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append((path, f"environment variable {name} is not set (used as ${{{name}}})"))
            return m.group(0)

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def parse_shapes(data: Any, file: str = "<config>", environ: Mapping[str, str] | None = None) -> Config:
    """Validate the shape of a parsed YAML document (types, ranges, unknown fields, literal keys,
    `${VAR}`s). Raise one ConfigError listing every problem as `file: field: message`.
    Cross-references are loader.py's: use `loader.parse_config` to get a config that can run."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", "the top level must be a mapping (server, deployments, model_groups, catalog)")
    problems = literal_key_problems(data)  # before interpolation: `${OPENAI_API_KEY}` is a fine reference
    env_problems: list[Problem] = []
    data = _interpolate(data, os.environ if environ is None else environ, "", env_problems)
    problems += env_problems
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        seen = {path for path, _ in problems}
        for err in e.errors():
            loc = tuple(err["loc"])
            path = format_loc(loc)
            if path in seen:  # one line per field: an unset ${VAR} also fails the field's type
                continue
            seen.add(path)
            problems.append((path, _message(err, loc)))
        raise ConfigError.from_problems(file, problems) from None
    if problems:
        raise ConfigError.from_problems(file, problems)
    return config


def _message(err: Any, loc: tuple[Any, ...]) -> str:
    msg: str = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown field '{loc[-1]}'"
    if err["type"] == "literal_error" and not _secretish(loc):
        return f"{msg}, got {err.get('input')!r}"
    return msg


# --- literal keys: keys are references (env:NAME, file:/path, ${NAME}), never values in the file ---

def _secretish(loc: tuple[Any, ...]) -> bool:
    return any(str(p) in ("api_key", "master_key", "headers") for p in loc)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The parsed YAML document of a config file; ConfigError naming the file (and line) if unreadable."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except OSError as e:
        raise ConfigError(name, "", f"cannot read: {e.strerror}") from None
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(name, where, f"invalid YAML: {getattr(e, 'problem', None) or e}") from None
