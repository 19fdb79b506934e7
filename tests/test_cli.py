"""The command line as users run it: real subprocesses, real SQLite files."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from assistd.config import Settings


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_")}
    env.update({"ASSISTD_DATA_DIR": str(data_dir), "ASSISTD_LOG_LEVEL": "warning", **extra})
    return env


def _assistd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistd", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`assistd serve` in a subprocess on a free loopback port; stopped by its PID."""
    env = _env(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistd", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


def test_keys_create_prints_a_key_and_stores_only_its_hash(tmp_path: Path) -> None:
    env = _env(tmp_path)
    result = _assistd("keys", "create", "--project", "team-a", env=env)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("sk-assistd-")
    assert len(key) > 40
    with sqlite3.connect(tmp_path / "assistd.db") as db:
        rows = db.execute("SELECT project, key_hash, prefix FROM api_keys").fetchall()
    assert len(rows) == 1
    project, key_hash, prefix = rows[0]
    assert project == "team-a"
    assert key_hash != key
    assert len(key_hash) == 64
    assert key.startswith(prefix)
    assert key.encode() not in (tmp_path / "assistd.db").read_bytes()


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    env = _env(tmp_path)
    for _ in range(2):
        result = _assistd("migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert "migrations applied" in result.stdout
    with sqlite3.connect(tmp_path / "assistd.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"assistants", "threads", "messages", "files", "api_keys"} <= tables
    assert mode == "wal"


def test_serve_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    result = _assistd("serve", "--host", "0.0.0.0", "--port", "0", env=_env(tmp_path))
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "ASSISTD_API_KEYS" in result.stderr


def test_served_process_uses_database_keys(served: str, tmp_path: Path) -> None:
    base_url = served
    # A key made while the server runs is accepted at once: keys are looked up per request.
    key = _assistd("keys", "create", "--project", "cli", env=_env(tmp_path)).stdout.strip()
    client = openai.OpenAI(base_url=base_url, api_key=key, _strict_response_validation=True)
    assistant = client.beta.assistants.create(model="gpt-4o", name="From the CLI")
    assert client.beta.assistants.retrieve(assistant.id).name == "From the CLI"
    stranger = openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        stranger.beta.assistants.list()
    assert err.value.code == "invalid_api_key"
    assert "sk-wrong" not in str(err.value.body)
    client.close()
    stranger.close()


def test_open_mode_accepts_any_key_on_loopback(tmp_path: Path) -> None:
    from tests.conftest import LiveServer

    live = LiveServer(Settings(data_dir=tmp_path)).start()
    try:
        for key in ("anything", "something-else"):
            client = openai.OpenAI(base_url=live.base_url, api_key=key, max_retries=0)
            client.beta.threads.create()
            client.close()
        raw = httpx.post(f"{live.base_url}/threads", json={})
        assert raw.status_code == 200
        assert raw.json()["object"] == "thread"
    finally:
        live.stop()


def test_settings_from_config_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "assistd.toml"
    config.write_text(
        '[assistd]\ndata_dir = "/srv/assistd"\napi_keys = ["ops:k1", "k2"]\nport = 9000\n'
    )
    for name in list(os.environ):
        if name.startswith("ASSISTD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ASSISTD_CONFIG", str(config))
    monkeypatch.setenv("ASSISTD_PORT", "9100")
    settings = Settings()
    assert settings.data_dir == Path("/srv/assistd")
    assert settings.static_keys() == [("ops", "k1"), ("default", "k2")]
    assert settings.port == 9100  # the environment wins over the file
    assert settings.resolved_database_url == "sqlite+aiosqlite:////srv/assistd/assistd.db"


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"ASSISTD_{name.upper()}" in readme, f"ASSISTD_{name.upper()} is undocumented"


@pytest.mark.parametrize(
    ("args", "extra", "needs"),
    [
        (["serve", "--workers", "2"], {}, "needs PostgreSQL"),
        (["serve", "--no-executor"], {}, "needs PostgreSQL"),
        (["worker"], {}, "needs PostgreSQL"),
        (["worker"], {"ASSISTD_DATABASE_URL": "postgresql+asyncpg://127.0.0.1/x"}, "needs Redis"),
        (
            ["serve", "--no-executor"],
            {"ASSISTD_DATABASE_URL": "postgresql+asyncpg://127.0.0.1/x"},
            "needs Redis",
        ),
        (["serve", "--workers", "0"], {}, "at least 1"),
    ],
)
def test_scale_out_commands_refuse_what_cannot_work(
    tmp_path: Path, args: list[str], extra: dict[str, str], needs: str
) -> None:
    # Several processes on one SQLite file, or API and worker processes with no Redis to
    # pass runs between them, would leave runs unexecuted: refused before anything starts.
    result = _assistd(*args, env=_env(tmp_path, **extra))
    assert result.returncode == 2
    assert needs in result.stderr
