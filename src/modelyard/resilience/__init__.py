"""Surviving upstream failures (docs/RELIABILITY.md): `policy` (what config load builds, and the
per-request view), `attempt_plan` (one request's way through its deployments), `retry` (backoff and
Retry-After), `breaker` (per-deployment circuit breakers over `state/`), `health` (EWMA, quantiles,
in-flight), `timeouts` (stream guard and watchdog), `checks` (active health checks), `settings`
(their config models, and the operator caps on per-request overrides)."""
