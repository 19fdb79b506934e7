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

import json
import os
from collections.abc import Iterator
from typing import Any

import hypothesis
import jsonschema_rs
import openai
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import LiveServer, make_settings
from tests.fuzz.seed import aim, seed, sse_events
from tests.fuzz.spec import (
    EXTENSIONS,
    SHARED_SPEC,
    SPEC,
    corrected_spec,
    documented,
    served_routes,
    template,
)

EXAMPLES = int(os.environ.get("ASSISTD_FUZZ_EXAMPLES", "15"))

RAW = corrected_spec()
SCHEMA = schemathesis.openapi.from_dict(RAW)
ROUTES = served_routes()
DOCUMENTED = documented(RAW)
FUZZED = sorted(
    (method, DOCUMENTED[(method, template(path))])
    for method, path in ROUTES
    if (method, template(path)) in DOCUMENTED
)
# The spec documents run streams only as JSON (a run object); their events are checked
# against its AssistantStreamEvent schema instead.
# (YAML read some examples as dates, which JSON Schema has no type for.)
STREAM_EVENT = jsonschema_rs.validator_for(
    json.loads(
        json.dumps(
            {"$ref": "#/components/schemas/AssistantStreamEvent", "components": RAW["components"]},
            default=str,
        )
    )
)


def test_fuzz_set_is_the_served_surface() -> None:
    """Every /v1 route is fuzzed, unless the spec does not document it (an extension)."""
    fuzzed = {(method, template(path)) for method, path in FUZZED}
    assert {(m, p) for m, p in ROUTES if (m, template(p)) not in fuzzed} == EXTENSIONS
    assert not {(m, template(p)) for m, p in EXTENSIONS} & set(DOCUMENTED)


def test_spec_copy_matches_shared() -> None:
    if not SHARED_SPEC.exists():
        pytest.skip("no ../shared beside this checkout: the copy is the only spec")
    assert SPEC.read_bytes() == SHARED_SPEC.read_bytes(), "refresh tests/data/openapi.yaml"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(make_settings(tmp_path_factory.mktemp("fuzz"))).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def api_key(fuzz_server: LiveServer) -> str:
    return fuzz_server.new_key("proj_fuzz")


@pytest.fixture
def ids(fuzz_server: LiveServer, api_key: str) -> Iterator[dict[str, str]]:
    """Fresh objects for each operation: another operation's cases may have deleted them."""
    with openai.OpenAI(base_url=fuzz_server.base_url, api_key=api_key, max_retries=0) as client:
        yield seed(client)


def error_envelope(response: schemathesis.Response) -> None:
    """Every error is OpenAI's envelope: {"error": {message, type, param, code}}."""
    if response.status_code < 400:
        return
    body: Any = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body


def is_run_stream(case: schemathesis.Case, response: schemathesis.Response) -> bool:
    content_type = response.headers.get("content-type", [""])[0]
    return "/runs" in case.operation.path and content_type.startswith("text/event-stream")


def check_run_stream(response: schemathesis.Response) -> None:
    for event in sse_events(response.text):
        errors = [error.message for error in STREAM_EVENT.iter_errors(event)]
        assert not errors, (event, errors)


def strategy(method: str, path: str, ids: dict[str, str]) -> st.SearchStrategy[Any]:
    operation = SCHEMA[path][method]
    params = {p: ids[p] for p in ids if "{" + p + "}" in path}
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=params).map(
            lambda case: aim(case, ids)
        ),
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
        response = case.call(base_url=fuzz_server.base_url, headers=headers, timeout=60)
        checks = [not_a_server_error]
        if is_run_stream(case, response):
            check_run_stream(response)
        else:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks, headers=headers)
        error_envelope(response)

    check()
