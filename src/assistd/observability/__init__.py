"""Operations: Prometheus metrics, OpenTelemetry traces and structured logs.

Low in the layers (it imports nothing of assistd but settings): the HTTP middleware, the
executor, the backends, ingestion and the sandbox report to it. Everything here is cheap
when unused: metrics are in-memory counters (one observation per request or run, never per
token), tracing is a no-op unless an OTLP endpoint is configured.
"""
