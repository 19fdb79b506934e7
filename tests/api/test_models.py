"""/v1/models and /healthz."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import LiveServer, assert_error


def _expected(server: LiveServer) -> list[str]:
    """The configured catalogue first, then the embedders (the local one and its aliases)."""
    embedders = [e.id for e in server.services.embedders.listed()]
    assert "all-MiniLM-L6-v2" in embedders
    return [*server.settings.model_ids, *embedders]


def test_list_models(client: openai.OpenAI, server: LiveServer) -> None:
    expected = _expected(server)
    assert server.settings.model_ids  # the default catalogue is not empty
    page = client.models.list()
    assert [m.id for m in page.data] == expected
    for model in page.data:
        assert model.object == "model"
        assert isinstance(model.owned_by, str)
        assert model.owned_by
        assert isinstance(model.created, int)
        assert model.created > 0
    # Auto-pagination over the (non-cursor) page yields the same models.
    assert [m.id for m in client.models.list()] == expected


def test_list_models_raw(http: httpx.Client, server: LiveServer) -> None:
    response = http.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == _expected(server)
    for model in body["data"]:
        aliased = model["id"].startswith("text-embedding-")
        extra = {"alias_of"} if aliased else set()
        assert set(model) == {"id", "object", "created", "owned_by", *extra}


def test_list_is_stable(client: openai.OpenAI) -> None:
    assert client.models.list().data == client.models.list().data


def test_retrieve_each_model(client: openai.OpenAI, server: LiveServer) -> None:
    listed = {m.id: m for m in client.models.list().data}
    for model_id in server.settings.model_ids:
        model = client.models.retrieve(model_id)
        assert model.id == model_id
        assert model.object == "model"
        assert model == listed[model_id]


@pytest.mark.parametrize("model_id", ["gpt-does-not-exist", "GPT-4O", "ft:gpt-4o:org::abc"])
def test_retrieve_unknown_model(client: openai.OpenAI, model_id: str) -> None:
    with pytest.raises(openai.NotFoundError) as exc_info:
        client.models.retrieve(model_id)
    exc = exc_info.value
    assert exc.status_code == 404
    assert exc.code == "model_not_found"
    assert exc.param == "model"
    assert model_id in exc.message


def test_retrieve_unknown_model_raw(http: httpx.Client) -> None:
    error = assert_error(http.get("/models/nope"), 404, param="model", code="model_not_found")
    assert error["message"] == "The model 'nope' does not exist or you do not have access to it."


def test_models_require_auth(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url) as raw:
        assert raw.get("/models").status_code == 401
        assert raw.get("/models/gpt-4o").status_code == 401


def test_healthz(server: LiveServer) -> None:
    # At the server root, not under /v1, and open without a key (for load balancers).
    response = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
