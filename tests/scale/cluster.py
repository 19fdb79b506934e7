"""Real assistd processes for the scale-out and crash tests: API processes
(``assistd serve``), workers (``assistd worker``), a Redis of the test's own when it must
be restarted, and stream clients that reconnect with ``Last-Event-ID`` when the API
process they talk to dies. Every process is started here and stopped by its PID."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from tests.api.stream_support import Frame, parse_sse
from tests.fake_upstream import FakeReply, text_reply, tool_reply

KEY = "sk-cluster"
LEASE_SECONDS = 3
END = {"completed", "failed", "cancelled", "expired", "incomplete"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """One child process, its output in ``log``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    ready_line: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.output()}"
            if self.port is not None:
                try:
                    httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                    return
                except httpx.TransportError:
                    pass
            elif self.ready_line is not None and self.ready_line in self.output():
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def assistd(name: str, args: list[str], env: dict[str, str], logs: Path) -> Process:
    port = None
    if args[0] == "serve":
        port = free_port()
        args = [*args, "--port", str(port)]
    return Process(
        name,
        [sys.executable, "-m", "assistd", *args],
        env,
        logs / f"{name}.log",
        port=port,
        ready_line=None if port else "worker started",
    )


def sdk(api: Process, *, max_retries: int = 0) -> openai.OpenAI:
    """A strict SDK client of an API process."""
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{api.port}/v1",
        api_key=KEY,
        max_retries=max_retries,
        _strict_response_validation=True,
    )


def redis_server(logs: Path, port: int) -> Process:
    """A Redis of the test's own (no persistence): one the test may kill and restart."""
    return Process(
        f"redis-{port}",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(logs),
        ],
        dict(os.environ),
        logs / f"redis-{port}.log",
        ready_line="Ready to accept connections",
    )


def base_env(data_dir: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTD_")}
    env.update(
        ASSISTD_DATA_DIR=str(data_dir),
        ASSISTD_API_KEYS=f"cluster:{KEY}",
        ASSISTD_LOG_LEVEL="warning",
        ASSISTD_RUN_LEASE_SECONDS=str(LEASE_SECONDS),
        # Streams re-read the run's state this often when no event comes.
        ASSISTD_STREAM_KEEPALIVE_SECONDS="1",
        # The logs must outlive a restart on a loaded machine (a restart under a load of 20
        # took 75 s, past the 60 s default, and the run's early events had expired).
        ASSISTD_STREAM_RETENTION_SECONDS="600",
        ASSISTD_EMBEDDED_MODEL="false",
        **values,
    )
    return env


# ---- the scripted model: what each scenario's runs do ------------------------------------

SCENARIOS = ("text", "function", "code")
WORDS = " ".join(f"w{i}" for i in range(30))


def respond(body: Any) -> FakeReply:
    """Text streamed slowly (a kill lands mid-stream), a function call (requires_action),
    or code that runs for a while (a kill lands during tool execution); after a tool's
    output, a short answer."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return text_reply("Done with the tool.", delay=0.05)
    content = last.get("content")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    scenario = str(content or "")
    if "function" in scenario:
        return tool_reply(("get_weather", {"city": "Paris"}), delay=0.05)
    if "code" in scenario:
        return tool_reply(("python", {"code": "import time\ntime.sleep(1.5)\nprint(42)"}))
    return text_reply(WORDS, delay=0.08)


# ---- a stream client that survives its API process ---------------------------------------


@dataclass
class RunClient:
    """Drives one run to its end over SSE: creates it streamed, submits tool outputs when
    asked, and when a connection breaks re-attaches to a live API process after the last
    event id it saw. ``frames`` is every event it received, in order."""

    apis: list[Process]
    assistant_id: str
    scenario: str
    first_api: int
    frames: list[Frame] = field(default_factory=list)
    run_id: str = ""
    thread_id: str = ""
    reconnects: int = 0
    error: BaseException | None = None

    def run(self, deadline: float) -> None:
        try:
            self._run(deadline)
        except BaseException as exc:
            self.error = exc

    def _api(self, preferred: int) -> str:
        while True:
            for i in range(len(self.apis)):
                api = self.apis[(preferred + i) % len(self.apis)]
                if api.alive:
                    return f"http://127.0.0.1:{api.port}/v1"
            time.sleep(0.2)

    def _run(self, deadline: float) -> None:
        body = {
            "assistant_id": self.assistant_id,
            "stream": True,
            "thread": {"messages": [{"role": "user", "content": self.scenario}]},
        }
        self._read("POST", f"{self._api(self.first_api)}/threads/runs", body)
        while time.monotonic() < deadline:
            last = self.frames[-1] if self.frames else None
            if last is not None and last.event == "done":
                ending = self.frames[-2].event if len(self.frames) > 1 else ""
                if ending == "thread.run.requires_action":
                    self.frames.pop()  # the [DONE] of one segment
                    self._submit(self.frames[-1].data)
                    continue
                return
            self.reconnects += 1
            time.sleep(0.2)
            self._attach()
        raise AssertionError(f"run {self.run_id} did not end in time")

    def _submit(self, run: dict[str, Any]) -> None:
        calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]
        outputs = [{"tool_call_id": c["id"], "output": "18C, sunny"} for c in calls]
        url = f"{self._api(self.first_api)}/threads/{self.thread_id}/runs/{self.run_id}"
        answer = self._read(
            "POST", f"{url}/submit_tool_outputs", {"tool_outputs": outputs, "stream": True}
        )
        if answer == 400:
            self._attach()  # a submission cut off after it was taken: follow the run

    def _attach(self) -> None:
        last_id = next((f.id for f in reversed(self.frames) if f.id), None)
        if self.frames and self.frames[-1].event == "done":
            self.frames.pop()
        headers = {"Last-Event-ID": last_id} if last_id else {}
        url = f"{self._api(self.first_api + 1)}/threads/{self.thread_id}/runs/{self.run_id}"
        self._read("GET", url, None, params={"stream": "true"}, headers=headers)

    def _read(self, method: str, url: str, body: Any, **options: Any) -> int:
        lines: list[str] = []
        status = 0
        try:
            with (
                httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http,
                http.stream(method, url, json=body, **options) as response,
            ):
                status = response.status_code
                if status != 200:
                    response.read()
                    return status
                for line in response.iter_lines():
                    lines.append(line)
                    if line == "":
                        self._take(lines)
                        lines = []
        except httpx.TransportError:
            pass  # the process died under us: what arrived whole was kept
        return status

    def _take(self, lines: list[str]) -> None:
        frames, _ = parse_sse(iter(lines))
        for frame in frames:
            if frame.event == "thread.run.created":
                self.run_id = frame.data["id"]
                self.thread_id = frame.data["thread_id"]
            self.frames.append(frame)


def start_clients(clients: list[RunClient], deadline: float) -> list[threading.Thread]:
    threads = [threading.Thread(target=c.run, args=(deadline,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    return threads


def full_log(api: Process, thread_id: str, run_id: str) -> list[Frame]:
    """Every event of the run in its log, read afresh: segment after segment."""
    frames: list[Frame] = []
    last_id: str | None = None
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
        while True:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            url = f"http://127.0.0.1:{api.port}/v1/threads/{thread_id}/runs/{run_id}"
            with http.stream("GET", url, params={"stream": "true"}, headers=headers) as response:
                assert response.status_code == 200, response.read()
                segment, _ = parse_sse(response.iter_lines())
            assert segment[-1].event == "done"
            segment = segment[:-1]
            if not segment:
                return frames
            frames += segment
            last_id = segment[-1].id
            if last_id is None or segment[-1].event != "thread.run.requires_action":
                return frames


def dump(frames: list[Frame]) -> str:
    return "\n".join(f"{f.id} {f.event} {json.dumps(f.data)[:80]}" for f in frames)


def processes(*groups: list[Process]) -> Iterator[Process]:
    for group in groups:
        yield from group
