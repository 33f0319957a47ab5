"""The YAML configuration: pydantic models, `${VAR}` interpolation, key references, and errors
that name the file and the field (`config.yaml: model_groups.fast.deployments[1]: unknown
deployment 'gpt4o'`).

Key references (`env:OPENAI_API_KEY`) stay references in the config object; they are resolved
once at start-up by `resolve_secret`, and never printed: `SecretRef` reprs as its reference.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError
from .resilience.settings import HedgeSettings, ResilienceSettings, RetrySettings

PROVIDERS = ("openai", "azure", "anthropic", "gemini", "sim")
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


class DeploymentConfig(_Model):
    provider: Literal["openai", "azure", "anthropic", "gemini", "sim"]
    model: str  # the upstream's model name
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
    sim: SimSettings = SimSettings()


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


class RequestLogConfig(_Model):
    enabled: bool = True
    path: str = "modelyard.db"
    flush_interval_s: float = Field(0.5, gt=0)
    batch_size: int = Field(500, ge=1)


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
    workers: int = Field(1, ge=1)
    # Linux scheduling of the upstream client's I/O threads (providers/io_threads.py): batch = they
    # wait for the event loop instead of preempting it; normal = the kernel's default; auto = batch
    # while several requests are in flight, normal otherwise. One policy per process.
    io_threads: Literal["auto", "batch", "normal"] = "auto"


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


# --- pipelines (execution/pipeline.py compiles and checks them; docs/EXECUTION.md) ---------------

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


class Config(_Model):
    server: ServerConfig = ServerConfig()
    deployments: dict[str, DeploymentConfig] = {}
    model_groups: dict[str, ModelGroupConfig] = {}
    catalog: dict[str, CardOverride] = {}
    resilience: ResilienceSettings = ResilienceSettings()
    pipelines: dict[str, PipelineConfig] = {}

    @model_validator(mode="after")
    def _check_references(self) -> Config:
        for gname, group in self.model_groups.items():
            if gname in self.deployments:
                raise _FieldError(("model_groups", gname), f"'{gname}' is also a deployment name")
            for i, d in enumerate(group.deployments):
                if d not in self.deployments:
                    raise _FieldError(("model_groups", gname, "deployments", i),
                                      f"unknown deployment '{d}'" + _choices(d, self.deployments))
            for kind in ("fallbacks", "rate_limit_fallbacks", "context_window_fallbacks",
                         "content_policy_fallbacks"):
                for i, f in enumerate(getattr(group, kind)):
                    if f not in self.deployments and f not in self.model_groups:
                        raise _FieldError(("model_groups", gname, kind, i), f"unknown group or deployment '{f}'")
            from .routing.validate import check_group  # lazy: routing imports this module

            problem = check_group(gname, group.strategy, group.options, group.deployments, self.deployments,
                                  {g: c.deployments for g, c in self.model_groups.items()})
            if problem is not None:
                raise _FieldError(("model_groups", gname, *problem[0]), problem[1])
        return self

    @model_validator(mode="after")
    def _check_pipelines(self) -> Config:
        if self.pipelines:  # templates, references and models checked now, not at request time
            from .execution.pipeline import PipelineConfigError, compile_pipeline

            known = set(self.deployments) | set(self.model_groups)
            for name, p in self.pipelines.items():
                try:
                    compile_pipeline(name, p, known)
                except PipelineConfigError as e:
                    raise _FieldError(("pipelines", name, *e.loc), e.message) from None
        return self


class _FieldError(ValueError):
    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


def _choices(name: str, known: dict[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def interpolate(value: Any, environ: dict[str, str] | None = None, *, _path: str = "",
                _file: str = "<config>") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(_file, _path, f"environment variable {name} is not set (used as ${{{name}}})")
        return _VAR.sub(sub, value) if "${" in value else value
    if isinstance(value, dict):
        return {k: interpolate(v, env, _path=f"{_path}.{k}" if _path else str(k), _file=_file)
                for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, _path=f"{_path}[{i}]", _file=_file) for i, v in enumerate(value)]
    return value


def parse_config(data: Any, file: str = "<config>", environ: dict[str, str] | None = None) -> Config:
    """Validate a parsed YAML document; raise ConfigError naming the file and field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", "the top level must be a mapping (server, deployments, model_groups, catalog)")
    _refuse_literal_keys(data, file)  # before interpolation: `${OPENAI_API_KEY}` is a fine reference
    data = interpolate(data, environ, _file=file)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _FieldError):
            raise ConfigError(file, format_loc(ctx_err.loc), ctx_err.message) from None
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}" if not _secretish(loc) else msg
        more = len(e.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ConfigError(file, format_loc(loc), msg) from None


def _refuse_literal_keys(data: dict[str, Any], file: str) -> None:
    deployments = data.get("deployments")
    if not isinstance(deployments, dict):
        return
    for name, d in deployments.items():
        key = d.get("api_key") if isinstance(d, dict) else None
        if isinstance(key, str) and "${" not in key and not key.startswith(("env:", "file:")) \
                and key.startswith(("sk-", "sk_", "AIza")) and len(key) > 20:
            raise ConfigError(file, f"deployments.{name}.api_key",
                              "looks like a literal API key: use a reference such as 'env:OPENAI_API_KEY'")


def _secretish(loc: tuple[Any, ...]) -> bool:
    return any(str(p) in ("api_key", "master_key") for p in loc)


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    p = Path(path)
    name = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except OSError as e:
        raise ConfigError(name, "", f"cannot read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(name, where, f"invalid YAML: {getattr(e, 'problem', None) or e}") from None
    return parse_config(data, name, environ)


def resolve_secret(ref: str | None, *, where: str, environ: dict[str, str] | None = None) -> str | None:
    """Turn a key reference into the key. Errors name the reference, never a value."""
    if ref is None or ref == "":
        return None
    env = os.environ if environ is None else environ
    if ref.startswith("env:"):
        name = ref[4:]
        if name not in env:
            raise ConfigError("<environment>", where,
                              f"environment variable {name} is not set (referenced as env:{name})")
        return env[name]
    if ref.startswith("file:"):
        try:
            return Path(ref[5:]).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError("<environment>", where, f"cannot read key file {ref[5:]}: {e.strerror}") from None
    return ref
