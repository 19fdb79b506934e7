"""build_registry when the bundled model's package is not installed: its names answer 400.

The registry comes in with ``missing`` filled, as ``local_specs`` leaves it without the
package (the main environment has the package; ``tests/test_install.py`` runs a server in
one that lacks it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from assistd.backends.factory import build_registry
from assistd.backends.local_model import BUNDLED_INSTALL, BUNDLED_NAME, bundled_missing_reason
from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from assistd.config import Settings
from assistd.errors import InvalidRequestError


def _settings(**values: Any) -> Settings:
    values.setdefault("embedded_model", False)
    return Settings(data_dir=Path("/nonexistent"), **values)


def _missing() -> BackendRegistry:
    return BackendRegistry(missing={BUNDLED_NAME: bundled_missing_reason()})


def _refused(registry: BackendRegistry, name: str) -> str:
    with pytest.raises(InvalidRequestError) as raised:
        registry.resolve(name)
    error = raised.value
    assert (error.status_code, error.param, error.code) == (400, "model", "model_not_available")
    assert f"'{name}'" in error.message
    assert BUNDLED_INSTALL in error.message
    return error.message


def test_the_bundled_name_and_the_aliases_it_would_serve_name_the_install() -> None:
    registry = build_registry(_settings(model_aliases={"mine": BUNDLED_NAME}), _missing())
    assert registry.listed() == []
    for name in (BUNDLED_NAME, "gpt-4o", "gpt-3.5-turbo", "mine"):
        _refused(registry, name)


def test_with_an_upstream_only_the_bundled_name_is_refused() -> None:
    registry = build_registry(_settings(upstream_base_url="http://127.0.0.1:1/v1"), _missing())
    try:
        # Not passed on to the upstream, which does not serve it either.
        _refused(registry, BUNDLED_NAME)
        assert isinstance(registry.resolve("gpt-4o").backend, OpenAICompatBackend)
    finally:
        asyncio.run(registry.aclose())


def test_a_configured_local_model_takes_the_aliases(tmp_path: Path) -> None:
    local = [{"name": "mine", "path": str(tmp_path / "m.gguf"), "threads": 1}]
    registry = build_registry(_settings(local_models=local), _missing())
    assert registry.resolve("gpt-4o").alias_of == "mine"
    _refused(registry, BUNDLED_NAME)
    chosen = build_registry(
        _settings(local_models=local, default_local_model=BUNDLED_NAME), _missing()
    )
    _refused(chosen, "gpt-4o")
