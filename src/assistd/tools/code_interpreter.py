"""The ``code_interpreter`` tool: the model's Python, run in the thread's sandbox.

The model is offered a ``python(code)`` function. The executor runs the code in the
thread's persistent kernel (``assistd.sandbox``) and records the call as OpenAI does:
``{"input": <code>, "outputs": [{"type": "logs"}, {"type": "image"}]}``. The code is
streamed into the step while the model writes it, and the outputs follow once it ran.

Files: the assistant's and the thread's ``tool_resources.code_interpreter.file_ids`` and
the thread's message attachments for code_interpreter are copied into ``/mnt/data`` the
first time a call needs them (which ones a thread has is kept with its calls, so it
survives restarts). Images the code displays and files it writes become File objects
with purpose ``assistants_output``: images are shown in the run's next message, files
are linked from it as ``sandbox:/mnt/data/<name>`` (``file_path`` annotations).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock
from assistd.backends.json_prefix import decode_string_prefix
from assistd.executor.builtin import ToolResult
from assistd.sandbox.base import MNT_DATA, ExecutionResult, Sandbox, SandboxError
from assistd.sandbox.process import RESTARTED
from assistd.store import tables
from assistd.store.blobs import BlobStore
from assistd.store.database import Database
from assistd.store.file_rows import read_bytes, store_bytes
from assistd.store.repository import Row
from assistd.store.wire import MODEL_KEY

logger = logging.getLogger("assistd.executor")

NAME = "python"
DESCRIPTION = (
    "Run Python code in a stateful, Jupyter-like environment and get what it prints, the "
    "value of its last line, and the matplotlib figures it shows. Variables, imports and "
    f"files persist between calls within this conversation. Files are in {MNT_DATA}: the "
    "user's uploaded files are there, and files you write there can be given to the user "
    f"by linking them as sandbox:{MNT_DATA}/<name>. There is no internet access. numpy, "
    "pandas and matplotlib are available. Executions time out after a while."
)
PARAMETERS = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
    "required": ["code"],
}
OUTPUT_PURPOSE = "assistants_output"
# What the model reads of a call's logs (the step keeps the sandbox's own, larger, cap).
MODEL_OUTPUT_CHARS = 8_000
# Files one execution may hand back; more are left in the sandbox and named as such.
MAX_OUTPUT_FILES = 20
MAX_OUTPUT_FILE_BYTES = 64 * 1024 * 1024
# Threads whose staged inputs are remembered in memory between a call and its step being
# stored (the stored steps are the lasting record).
_REMEMBERED = 1024
_CODE_START = re.compile(r'\s*\{\s*"code"\s*:\s*"')


@dataclass
class _Run:
    """What one execution produced, in wire and model form."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    logs: str = ""
    files: dict[str, str] = field(default_factory=dict)


class CodeInterpreterTool:
    type: ClassVar[str] = "code_interpreter"

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        sandbox: Sandbox,
        *,
        time_limit: float | None = None,
        max_file_bytes: int = MAX_OUTPUT_FILE_BYTES,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.sandbox = sandbox
        # None: the sandbox's own default (ASSISTD_SANDBOX_TIMEOUT_SECONDS).
        self.time_limit = time_limit
        self.max_file_bytes = max_file_bytes
        # Why the sandbox cannot run here (set at start-up); calls then say so.
        self.unavailable: str | None = None
        self._staged: collections.OrderedDict[str, dict[str, str]] = collections.OrderedDict()

    def definition(self, tool: dict[str, Any]) -> dict[str, Any]:
        return {"name": NAME, "description": DESCRIPTION, "parameters": PARAMETERS}

    def announce(self, call_id: str) -> dict[str, Any]:
        return {"id": call_id, "type": "code_interpreter", "code_interpreter": _empty()}

    def input_delta(self, arguments: str) -> str | None:
        stripped = arguments.lstrip()
        if not stripped:
            return None
        if not stripped.startswith("{"):
            return arguments  # some models send the bare code
        match = _CODE_START.match(arguments)
        return decode_string_prefix(arguments[match.end() :]) if match else None

    def result_delta(self, details: dict[str, Any], streamed: str) -> dict[str, Any] | None:
        call = details["code_interpreter"]
        delta: dict[str, Any] = {}
        code = str(call["input"])
        if code.startswith(streamed) and len(code) > len(streamed):
            delta["input"] = code[len(streamed) :]
        if call["outputs"]:
            delta["outputs"] = [{"index": i, **o} for i, o in enumerate(call["outputs"])]
        return {"type": "code_interpreter", "code_interpreter": delta} if delta else None

    async def call(
        self,
        run: Row,
        tool: dict[str, Any],
        call_id: str,
        arguments: str,
        ordinal: int,
        budget: int | None = None,
    ) -> ToolResult:
        code = _code(arguments)
        staged: dict[str, str] = {}
        done = _Run()
        if self.unavailable is not None:
            done.logs = f"The code interpreter is not available on this server: {self.unavailable}"
        elif not code.strip():
            done.logs = 'No code was given: call python with {"code": "<Python code>"}.'
        else:
            try:
                staged, new_inputs = await self._stage(run)
                if new_inputs:
                    listed = ", ".join(f"{MNT_DATA}/{n}" for n in new_inputs)
                    done.notes.append(f"Files available: {listed}")
                result = await self.sandbox.execute(
                    run["thread_id"], code, time_limit=self.time_limit
                )
            except SandboxError as exc:
                done.logs = f"The code could not run: {exc.message}"
            else:
                await self._collect(run, result, set(new_inputs), done)
        if done.logs and not done.outputs:
            done.outputs.insert(0, {"type": "logs", "logs": done.logs})
        output = _model_output(done, budget)
        details = {
            "id": call_id,
            "type": "code_interpreter",
            "code_interpreter": {"input": code, "outputs": done.outputs},
            MODEL_KEY: {
                "name": NAME,
                "arguments": arguments,
                "output": output,
                "files": done.files,
                "staged": staged,
            },
        }
        return ToolResult(details=details, output=output)

    # -- outputs -----------------------------------------------------------------------

    async def _collect(
        self, run: Row, result: ExecutionResult, inputs: set[str], done: _Run
    ) -> None:
        done.logs = _logs(result)
        if done.logs:
            done.outputs.append({"type": "logs", "logs": done.logs})
        for png in result.images:
            file_id = await self._store(run, "image.png", png, "image/png")
            done.outputs.append({"type": "image", "image": {"file_id": file_id}})
            done.notes.append(f"[image {file_id} displayed to the user]")
        written: list[str] = []
        skipped: list[str] = []
        for change in result.files:
            if change.name in inputs:
                continue
            if len(written) >= MAX_OUTPUT_FILES or change.size > self.max_file_bytes:
                skipped.append(change.name)
                continue
            try:
                data = await self.sandbox.read_file(
                    run["thread_id"], change.name, max_bytes=self.max_file_bytes
                )
            except (FileNotFoundError, ValueError):
                continue  # gone again, or not a regular file: nothing to hand over
            done.files[change.name] = await self._store(run, f"{MNT_DATA}/{change.name}", data)
            written.append(f"sandbox:{MNT_DATA}/{change.name}")
        if written:
            done.notes.append("Files written (link them as given): " + ", ".join(written))
        if skipped:
            done.notes.append(
                "Not handed to the user (too many or too large): " + ", ".join(skipped)
            )

    async def _store(
        self, run: Row, filename: str, data: bytes, content_type: str | None = None
    ) -> str:
        return await store_bytes(
            self.db,
            self.blobs,
            run["project"],
            filename,
            OUTPUT_PURPOSE,
            data,
            content_type=content_type,
        )

    # -- inputs ------------------------------------------------------------------------

    async def _stage(self, run: Row) -> tuple[dict[str, str], list[str]]:
        """Copy the thread's input files not yet in its sandbox; returns every staged file
        (file id → name under /mnt/data) and the names copied now."""
        thread_id = run["thread_id"]
        async with self.db.read() as conn:
            wanted = await _input_files(conn, run)
            staged = await _staged(conn, thread_id)
            staged.update(self._staged.get(thread_id, {}))
            if not wanted:
                return staged, []
            # A file the code deleted is copied again, under the name it had.
            present = await asyncio.to_thread(_existing, self.sandbox, thread_id, staged)
            todo = [f for f in wanted if f not in present]
            rows = await _file_rows(conn, run["project"], todo)
        copied: list[str] = []
        used = set(present.values())
        for row in rows:
            name = staged.get(row["id"]) or _unique(
                _safe_name(row["filename"], row["id"]), row["id"], used
            )
            try:
                data = await read_bytes(self.blobs, row["id"])
                await self.sandbox.put_file(thread_id, name, data)
            except (FileNotFoundError, ValueError) as exc:
                # A blob gone missing must not fail the run: the file is just not there.
                logger.warning("input file %s not copied to the sandbox: %r", row["id"], exc)
                continue
            staged[row["id"]] = name
            used.add(name)
            copied.append(name)
        self._staged[thread_id] = staged
        self._staged.move_to_end(thread_id)
        while len(self._staged) > _REMEMBERED:
            self._staged.popitem(last=False)
        return staged, copied


def _empty() -> dict[str, Any]:
    return {"input": "", "outputs": []}


def _code(arguments: str) -> str:
    """The code from the model's arguments; bare code (not JSON) is taken as it is."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return arguments if not arguments.lstrip().startswith("{") else ""
    if isinstance(parsed, dict):
        value = parsed.get("code", parsed.get("input", ""))
        return value if isinstance(value, str) else ""
    return parsed if isinstance(parsed, str) else ""


def _logs(result: ExecutionResult) -> str:
    """One ``logs`` text as OpenAI shows it: what the code printed, then its traceback."""
    text = result.text
    if result.error:
        if text and not text.endswith("\n"):
            text += "\n"
        text += result.error
    if result.restarted:
        text = f"Note: {RESTARTED}.\n{text}"
    return text


def _model_output(done: _Run, budget: int | None) -> str:
    limit = min(MODEL_OUTPUT_CHARS, budget * 3) if budget else MODEL_OUTPUT_CHARS
    logs = done.logs
    if len(logs) > limit:
        logs = logs[: limit // 2] + "\n...[output truncated]...\n" + logs[-limit // 2 :]
    parts = [logs] if logs else []
    parts += done.notes
    return "\n".join(parts) if parts else "(no output)"


def _safe_name(filename: str, file_id: str) -> str:
    name = filename.replace("/", "_").replace("\\", "_").replace("\0", "_").strip()
    return name if name and name not in (".", "..") else file_id


def _unique(name: str, file_id: str, used: set[str]) -> str:
    return name if name not in used else f"{file_id}-{name}"


def _existing(sandbox: Sandbox, thread_id: str, staged: dict[str, str]) -> dict[str, str]:
    """The staged files still in the thread's directory (blocking: it stats them)."""
    workdir = sandbox.workdir(thread_id)
    present: dict[str, str] = {}
    for file_id, name in staged.items():
        try:
            os.lstat(workdir / name)  # never follows a link the code planted
        except OSError:
            continue
        present[file_id] = name
    return present


async def _input_files(conn: AsyncConnection, run: Row) -> list[str]:
    """The assistant's, then the thread's, then the attached files, each once."""
    assistants, threads, messages = tables.assistants, tables.threads, tables.messages
    ids: list[str] = []
    for table, key in ((assistants, run["assistant_id"]), (threads, run["thread_id"])):
        resources = await conn.scalar(sa.select(table.c.tool_resources).where(table.c.id == key))
        section = (resources or {}).get("code_interpreter") or {}
        ids += [str(f) for f in section.get("file_ids") or []]
    result = await conn.execute(
        sa.select(messages.c.attachments)
        .where(messages.c.thread_id == run["thread_id"])
        .order_by(messages.c.sort_key, messages.c.id)
    )
    for (attachments,) in result:
        for attachment in attachments or []:
            tools = attachment.get("tools") or []
            if any(t.get("type") == "code_interpreter" for t in tools):
                ids.append(str(attachment["file_id"]))
    return list(dict.fromkeys(ids))


async def _staged(conn: AsyncConnection, thread_id: str) -> dict[str, str]:
    """Input files already copied into the thread's sandbox, from its stored calls."""
    steps = tables.run_steps
    result = await conn.execute(
        sa.select(steps.c.step_details).where(
            steps.c.thread_id == thread_id, steps.c.type == "tool_calls"
        )
    )
    staged: dict[str, str] = {}
    for (details,) in result:
        for call in details.get("tool_calls", []):
            hidden = call.get(MODEL_KEY)
            if call.get("type") == "code_interpreter" and isinstance(hidden, dict):
                staged.update(hidden.get("staged") or {})
    return staged


async def _file_rows(conn: AsyncConnection, project: str, file_ids: list[str]) -> list[Row]:
    if not file_ids:
        return []
    files = tables.files
    result = await conn.execute(
        sa.select(files.c.id, files.c.filename).where(
            files.c.id.in_(file_ids),
            files.c.project == project,
            sa.or_(files.c.expires_at.is_(None), files.c.expires_at > clock.now()),
        )
    )
    found = {r.id: dict(r._mapping) for r in result}
    return [found[f] for f in file_ids if f in found]


# -- what the run's calls produced, for its next message ---------------------------------


def produced(calls: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """The files (name under /mnt/data → file id, the latest write winning) and the images
    of a run's code_interpreter calls, in order."""
    files: dict[str, str] = {}
    images: list[str] = []
    for call in calls:
        hidden = call.get(MODEL_KEY)
        if isinstance(hidden, dict):
            files.update(hidden.get("files") or {})
        for output in call.get("code_interpreter", {}).get("outputs", []):
            if output.get("type") == "image":
                images.append(str(output["image"]["file_id"]))
    return files, images


async def shown_images(db: Database, run_id: str) -> set[str]:
    """Image files the run's messages already show."""
    messages = tables.messages
    async with db.read() as conn:
        result = await conn.execute(
            sa.select(messages.c.content).where(messages.c.run_id == run_id)
        )
        contents = [row[0] for row in result]
    return {
        str(part["image_file"]["file_id"])
        for content in contents
        for part in content or []
        if part.get("type") == "image_file"
    }
