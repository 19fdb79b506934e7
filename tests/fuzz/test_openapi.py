"""Property-based tests of every operation assistd serves, generated from OpenAI's spec.

Schemathesis turns each operation of OpenAI's OpenAPI spec (``tests/fuzz/spec.py``) that
assistd's route table serves into requests, valid and invalid, sent to a live server: some
name objects that do not exist, some name real ones (``tests/fuzz/seed.py``). The
properties: no 5xx, every documented response valid against the spec's schema (and every
event of a run's stream against its ``AssistantStreamEvent``), every error in OpenAI's
envelope.

Bounded for ``make test`` (deterministic, a few examples per operation); a longer pass:
``ASSISTD_FUZZ_EXAMPLES=500 .venv/bin/pytest tests/fuzz`` (see the README).

One database (SQLite) is enough: the properties are about request handling and wire
models, which do not depend on it; the API suites run on both.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import hypothesis
import openai
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import LiveServer, make_settings
from tests.fuzz.seed import aim, path_parameters, seed, streamed
from tests.fuzz.spec import (
    EXTENSIONS,
    SHARED_SPEC,
    SPEC,
    SPEC_SHA256,
    STREAMING,
    corrected_spec,
    documented,
    served_routes,
    template,
)

EXAMPLES = int(os.environ.get("ASSISTD_FUZZ_EXAMPLES", "25"))

RAW = corrected_spec()
SCHEMA = schemathesis.openapi.from_dict(RAW)
ROUTES = served_routes()
DOCUMENTED = documented(RAW)
FUZZED = sorted(
    (method, DOCUMENTED[(method, template(path))])
    for method, path in ROUTES
    if (method, template(path)) in DOCUMENTED
)


def test_fuzz_set_is_the_served_surface() -> None:
    """Every /v1 route is fuzzed, unless the spec does not document it (an extension)."""
    fuzzed = {(method, template(path)) for method, path in FUZZED}
    assert {(m, p) for m, p in ROUTES if (m, template(p)) not in fuzzed} == EXTENSIONS
    assert not {(m, template(p)) for m, p in EXTENSIONS} & set(DOCUMENTED)


def test_spec_copy_is_the_reference() -> None:
    """The copy is the spec it was taken from, and still the one in ../shared if present."""
    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() == SPEC_SHA256
    if SHARED_SPEC.exists():
        assert SPEC.read_bytes() == SHARED_SPEC.read_bytes(), "refresh tests/data/openapi.yaml"


def sse(path: str, body: str) -> schemathesis.Response:
    request = requests.Request("POST", f"http://127.0.0.1/v1{path}").prepare()
    return schemathesis.Response(
        status_code=200,
        headers={"content-type": ["text/event-stream; charset=utf-8"]},
        content=body.encode(),
        request=request,
        elapsed=0.0,
        verify=True,
    )


@pytest.mark.parametrize(
    ("path", "good", "bad"),
    [
        (
            "/chat/completions",
            'data: {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", '
            '"choices": []}\n\ndata: [DONE]\n\n',
            'data: {"id": "c"}\n\ndata: [DONE]\n\n',
        ),
        (
            "/threads/runs",
            "event: done\ndata: [DONE]\n\n",
            'event: thread.run.created\ndata: {"id": "run_1"}\n\n',
        ),
    ],
)
def test_stream_schemas_check_each_event(path: str, good: str, bad: str) -> None:
    """The streams' schemas (see ``corrected_spec``) are not vacuous: a bad event fails."""
    operation = SCHEMA[path]["POST"]
    operation.validate_response(sse(path, good))
    with pytest.raises(AssertionError, match="SSE event violates schema"):
        operation.validate_response(sse(path, bad))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("fuzz"))) as live:
        yield live


@pytest.fixture(scope="module")
def api_key(fuzz_server: LiveServer) -> str:
    return fuzz_server.new_key("proj_fuzz")


@pytest.fixture
def ids(fuzz_server: LiveServer, api_key: str) -> Iterator[dict[str, str]]:
    """Fresh objects for each operation: another operation's cases may have deleted them."""
    with openai.OpenAI(base_url=fuzz_server.base_url, api_key=api_key, max_retries=0) as client:
        yield seed(client, fuzz_server)


def error_envelope(response: schemathesis.Response) -> None:
    """Every error is OpenAI's envelope: {"error": {message, type, param, code}}."""
    if response.status_code < 400:
        return
    body: Any = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body


def strategy(method: str, path: str, ids: dict[str, str]) -> st.SearchStrategy[Any]:
    """Valid requests, invalid ones, and valid ones aimed at the seeded objects (streamed
    half the time where the operation can stream)."""
    operation = SCHEMA[path][method]
    aimed = operation.as_strategy(
        GenerationMode.POSITIVE, path_parameters=path_parameters(path, ids)
    ).map(lambda case: aim(case, ids))
    if method == "POST" and path in STREAMING:
        aimed = st.tuples(aimed, st.booleans()).map(lambda c: streamed(c[0]) if c[1] else c[0])
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        aimed,
    )


@pytest.mark.parametrize(("method", "path"), FUZZED, ids=[f"{m} {p}" for m, p in FUZZED])
def test_operation(
    fuzz_server: LiveServer, api_key: str, ids: dict[str, str], method: str, path: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "assistants=v2"}

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=strategy(method, path, ids))
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=fuzz_server.base_url,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=60,
        )
        error_envelope(response)

    check()
