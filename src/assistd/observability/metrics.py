"""The Prometheus metrics, and their exposition.

Multi-process: when ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is imported
(``assistd serve --workers N`` sets it up itself), each process writes its values to files
there and ``/metrics`` adds up every process's (prometheus_client's multiprocess mode).
Gauges then say how to combine processes: live streams and kernels are summed over the
living processes, the ingestion backlog (a count the database gives) is the latest value.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Requests and model calls: from milliseconds (a GET) to minutes (a streamed run).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUESTS = Counter(
    "assistd_http_requests",
    "HTTP requests, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "assistd_http_request_duration_seconds",
    "HTTP request latency, to the end of the response body (a stream's whole length).",
    ["method", "route"],
    buckets=_SECONDS,
)
RUNS = Counter("assistd_runs", "Runs that reached a final status, by that status.", ["status"])
RUN_QUEUE_WAIT = Histogram(
    "assistd_run_queue_wait_seconds",
    "From a run's creation to its first start by an executor (created_at is whole seconds).",
    buckets=_SECONDS,
)
RUN_TTFT = Histogram(
    "assistd_run_time_to_first_token_seconds",
    "From an executor taking up a run to the model's first streamed chunk (each time a run "
    "is taken up: at its start and after tool outputs).",
    buckets=_SECONDS,
)
RUN_DURATION = Histogram(
    "assistd_run_duration_seconds",
    "From a run's start to its final status (whole-second start), for runs that started.",
    buckets=_SECONDS,
)
ACTIVE_STREAMS = Gauge(
    "assistd_active_streams",
    "Server-sent event streams (runs and chat completions) being sent now.",
    multiprocess_mode="livesum",
)
TOOL_EXECUTIONS = Counter(
    "assistd_tool_executions",
    "Tool calls: built-in tools executed here (outcome success or error), function calls "
    "handed to the client (outcome delegated).",
    ["type", "outcome"],
)
UPSTREAM_ERRORS = Counter(
    "assistd_upstream_errors",
    "Upstream model calls that failed (after retries), by upstream and error code.",
    ["upstream", "code"],
)
UPSTREAM_RETRIES = Counter(
    "assistd_upstream_retries",
    "Upstream model calls retried (429, 5xx, connection failures), by upstream.",
    ["upstream"],
)
INGESTION_BACKLOG = Gauge(
    "assistd_ingestion_backlog_files",
    "Vector store files waiting for or in ingestion (status in_progress), read at scrape.",
    multiprocess_mode="mostrecent",
)
SANDBOX_KERNELS = Gauge(
    "assistd_sandbox_live_kernels",
    "Code interpreter kernels (sandboxed processes) alive now.",
    multiprocess_mode="livesum",
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    if multiprocess_dir() is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
