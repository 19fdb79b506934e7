"""OpenTelemetry traces, named and attributed after the GenAI semantic conventions.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set: then spans
go to that collector over OTLP/HTTP. Off means no span objects at all: each helper hands
back OpenTelemetry's invalid span, whose methods do nothing, without touching the context.

Spans: the HTTP request (FastAPI's own server span, given this provider), ``invoke_agent``
per run execution, ``chat <model>`` per model call and ``execute_tool <name>`` per built-in
tool call, nested in that order. Prompts and outputs are recorded only when
``ASSISTD_TRACE_CONTENT`` is on: they are the users' data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

logger = logging.getLogger("assistd.tracing")

_SCOPE = "assistd"
_provider: trace.TracerProvider | None = None
_tracer: trace.Tracer | None = None
_content = False
# Only flushed and shut down by us when we made it.
_owned = False


def endpoint_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_from_environment(*, content: bool = False) -> None:
    """Export to the OTLP endpoint the environment names, once per process; else stay off
    (or keep a provider a test installed)."""
    global _owned
    if _provider is not None or not endpoint_configured():
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # the exporter is an optional extra
        raise RuntimeError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
            "pip install 'assistd[otlp]' (opentelemetry-exporter-otlp-proto-http)"
        ) from exc
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "assistd")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider, content=content)
    _owned = True


def install(provider: trace.TracerProvider, *, content: bool = False) -> None:
    """Trace with ``provider`` (tests pass one with an in-memory exporter)."""
    global _provider, _tracer, _content, _owned
    _provider, _tracer, _content, _owned = provider, provider.get_tracer(_SCOPE), content, False


def uninstall() -> None:
    global _provider, _tracer, _content, _owned
    _provider, _tracer, _content, _owned = None, None, False, False


def provider() -> trace.TracerProvider | None:
    return _provider


def enabled() -> bool:
    return _tracer is not None


def shutdown() -> None:
    """Flush and stop the exporter this module made (at process exit)."""
    if _owned and _provider is not None:
        with contextlib.suppress(Exception):
            _provider.shutdown()  # type: ignore[attr-defined]
        uninstall()


@contextlib.contextmanager
def _span(name: str, attributes: dict[str, Any], kind: SpanKind) -> Iterator[Span]:
    if _tracer is None:
        yield INVALID_SPAN
        return
    with _tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
        yield span


def agent_span(
    *, assistant_id: str, run_id: str, thread_id: str, model: str, project: str
) -> contextlib.AbstractContextManager[Span]:
    """A run being executed: ``invoke_agent <assistant id>``."""
    if _tracer is None:
        return contextlib.nullcontext(INVALID_SPAN)
    return _span(
        f"invoke_agent {assistant_id}",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": assistant_id,
            "gen_ai.conversation.id": thread_id,
            "gen_ai.request.model": model,
            "assistd.run.id": run_id,
            "assistd.project": project,
        },
        SpanKind.INTERNAL,
    )


def chat_span(
    *, model: str, upstream_model: str, provider_name: str, messages: list[Any]
) -> contextlib.AbstractContextManager[Span]:
    """One model call: ``chat <model>``; the prompt only with content tracing on."""
    if _tracer is None:
        return contextlib.nullcontext(INVALID_SPAN)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_name,
        "gen_ai.system": provider_name,
        "gen_ai.request.model": model,
        "assistd.upstream.model": upstream_model,
    }
    if _content:
        attributes["gen_ai.input.messages"] = json.dumps(messages, default=str)
    return _span(f"chat {model}", attributes, SpanKind.CLIENT)


def chat_result(
    span: Span,
    *,
    input_tokens: int,
    output_tokens: int,
    finish_reason: str | None,
    text: str,
    tool_calls: list[dict[str, str]],
) -> None:
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
    if finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
    if _content:
        parts: list[dict[str, Any]] = []
        if text:
            parts.append({"type": "text", "content": text})
        parts += [{"type": "tool_call", **call} for call in tool_calls]
        output = [{"role": "assistant", "parts": parts, "finish_reason": finish_reason}]
        span.set_attribute("gen_ai.output.messages", json.dumps(output))


# The semantic conventions' tool types: a built-in that searches is a datastore.
_TOOL_TYPES = {"function": "function", "file_search": "datastore"}


def tool_span(
    *, name: str, kind: str, call_id: str, arguments: str
) -> contextlib.AbstractContextManager[Span]:
    """One built-in tool call: ``execute_tool <name>``."""
    if _tracer is None:
        return contextlib.nullcontext(INVALID_SPAN)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": _TOOL_TYPES.get(kind, "extension"),
        "gen_ai.tool.call.id": call_id,
    }
    if _content:
        attributes["gen_ai.tool.call.arguments"] = arguments
    return _span(f"execute_tool {name}", attributes, SpanKind.INTERNAL)


def tool_result(span: Span, output: str | None) -> None:
    if _content and output is not None and span.is_recording():
        span.set_attribute("gen_ai.tool.call.result", output)


def failed(span: Span, error_type: str, message: str | None = None) -> None:
    """Mark ``span`` failed (the conventions' ``error.type``)."""
    if span.is_recording():
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, message))


def current() -> Span:
    return trace.get_current_span() if _tracer is not None else INVALID_SPAN
