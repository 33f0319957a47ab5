"""What the gateway tells operators: Prometheus metrics (metrics.py), OpenTelemetry traces
(tracing.py, the `otel` extra) and one log line per request (logs.py). All three read the finished
request's row through `Gateway.observers`, except spans, which follow the request as it runs."""
