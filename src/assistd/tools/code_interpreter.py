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

A chat completion addressed to an assistant has a kernel of its own for the request
(``ToolScope.session``), given the assistant's files, and discarded when it ends.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from assistd import clock
from assistd.backends.json_prefix import decode_string_prefix
from assistd.sandbox.base import MNT_DATA, ExecutionResult, Sandbox, SandboxError
from assistd.sandbox.process import RESTARTED
from assistd.store import assistants, files, messages, run_steps, threads
from assistd.store.blobs import BlobStore
from assistd.store.database import Connection, Database
from assistd.store.files import read_bytes, store_bytes
from assistd.store.records import JsonObject
from assistd.store.tool_calls import ModelView, ToolCall
from assistd.tools.base import Tool, ToolScope
from assistd.tools.citations import MessageSources

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


class CodeInterpreterTool(Tool):
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

    def definition(self, entry: JsonObject) -> JsonObject:
        return {"name": NAME, "description": DESCRIPTION, "parameters": PARAMETERS}

    def announce(self, call_id: str) -> JsonObject:
        return {"id": call_id, "type": "code_interpreter", "code_interpreter": _empty()}

    def input_delta(self, arguments: str) -> str | None:
        stripped = arguments.lstrip()
        if not stripped:
            return None
        if not stripped.startswith("{"):
            return arguments  # some models send the bare code
        match = _CODE_START.match(arguments)
        return decode_string_prefix(arguments[match.end() :]) if match else None

    def result_delta(self, call: ToolCall, streamed: str) -> JsonObject | None:
        delta: JsonObject = {}
        code = str(call.section["input"])
        if code.startswith(streamed) and len(code) > len(streamed):
            delta["input"] = code[len(streamed) :]
        outputs = call.section["outputs"]
        if outputs:
            delta["outputs"] = [{"index": i, **o} for i, o in enumerate(outputs)]
        return {"type": "code_interpreter", "code_interpreter": delta} if delta else None

    def annotate(self, calls: Sequence[ToolCall], into: MessageSources) -> None:
        # The latest write of a name wins; images in the order the code showed them.
        for call in calls:
            if call.model is not None:
                into.files |= call.model.files
            for output in call.section.get("outputs", []):
                if output.get("type") == "image":
                    into.images.append(str(output["image"]["file_id"]))

    async def execute(
        self,
        scope: ToolScope,
        entry: JsonObject,
        call_id: str,
        arguments: str,
        ordinal: int,
        budget: int | None = None,
    ) -> ToolCall:
        code = _code(arguments)
        staged: dict[str, str] = {}
        done = _Run()
        if self.unavailable is not None:
            done.logs = f"The code interpreter is not available on this server: {self.unavailable}"
        elif not code.strip():
            done.logs = 'No code was given: call python with {"code": "<Python code>"}.'
        else:
            try:
                staged, new_inputs = await self._stage(scope)
                if new_inputs:
                    listed = ", ".join(f"{MNT_DATA}/{n}" for n in new_inputs)
                    done.notes.append(f"Files available: {listed}")
                result = await self.sandbox.execute(scope.session, code, time_limit=self.time_limit)
            except SandboxError as exc:
                done.logs = f"The code could not run: {exc.message}"
            else:
                await self._collect(scope, result, set(new_inputs), done)
        if done.logs and not done.outputs:
            done.outputs = [{"type": "logs", "logs": done.logs}]
        output = _model_output(done, budget)
        return ToolCall(
            call_id,
            "code_interpreter",
            {"input": code, "outputs": done.outputs},
            ModelView(NAME, arguments, output, files=done.files, staged=staged),
        )

    # -- outputs -----------------------------------------------------------------------

    async def _collect(
        self, scope: ToolScope, result: ExecutionResult, inputs: set[str], done: _Run
    ) -> None:
        done.logs = _logs(result)
        if done.logs:
            done.outputs.append({"type": "logs", "logs": done.logs})
        for png in result.images:
            file_id = await self._store(scope, "image.png", png, "image/png")
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
                    scope.session, change.name, max_bytes=self.max_file_bytes
                )
            except (FileNotFoundError, ValueError):
                continue  # gone again, or not a regular file: nothing to hand over
            done.files[change.name] = await self._store(scope, f"{MNT_DATA}/{change.name}", data)
            written.append(f"sandbox:{MNT_DATA}/{change.name}")
        if written:
            done.notes.append("Files written (link them as given): " + ", ".join(written))
        if skipped:
            done.notes.append(
                "Not handed to the user (too many or too large): " + ", ".join(skipped)
            )

    async def _store(
        self, scope: ToolScope, filename: str, data: bytes, content_type: str | None = None
    ) -> str:
        return await store_bytes(
            self.db,
            self.blobs,
            scope.project,
            filename,
            OUTPUT_PURPOSE,
            data,
            content_type=content_type,
        )

    async def discard(self, session: str) -> None:
        """Stop a chat completion's kernel and delete its files (the outputs handed over
        are File objects by now)."""
        self._staged.pop(session, None)
        await self.sandbox.remove(session)

    # -- inputs ------------------------------------------------------------------------

    async def _stage(self, scope: ToolScope) -> tuple[dict[str, str], list[str]]:
        """Copy the scope's input files not yet in its sandbox; returns every staged file
        (file id → name under /mnt/data) and the names copied now."""
        session = scope.session
        async with self.db.read() as conn:
            wanted = await _input_files(conn, scope)
            staged = await _staged(conn, scope.thread_id) if scope.thread_id else {}
            staged |= self._staged.get(session, {})
            if not wanted:
                return staged, []
            # A file the code deleted is copied again, under the name it had.
            present = await asyncio.to_thread(_existing, self.sandbox, session, staged)
            todo = [f for f in wanted if f not in present]
            found = await files.live_among(conn, scope.project, todo, clock.now())
        copied: list[str] = []
        used = set(present.values())
        for file in found:
            name = staged.get(file.id) or _unique(_safe_name(file.filename, file.id), file.id, used)
            try:
                data = await read_bytes(self.blobs, file.id)
                await self.sandbox.put_file(session, name, data)
            except (FileNotFoundError, ValueError) as exc:
                # A blob gone missing must not fail the run: the file is just not there.
                logger.warning("input file %s not copied to the sandbox: %r", file.id, exc)
                continue
            staged[file.id] = name
            used.add(name)
            copied.append(name)
        self._staged[session] = staged
        self._staged.move_to_end(session)
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


async def _input_files(conn: Connection, scope: ToolScope) -> list[str]:
    """The assistant's, then the thread's, then the attached files, each once."""
    ids: list[str] = []
    sources = [await assistants.tool_resources_of(conn, scope.assistant_id)]
    if scope.thread_id is not None:
        sources.append(await threads.tool_resources_of(conn, scope.thread_id))
    for resources in sources:
        section = (resources or {}).get("code_interpreter") or {}
        ids += [str(f) for f in section.get("file_ids") or []]
    if scope.thread_id is None:
        return list(dict.fromkeys(ids))
    for attachments in await messages.attachments_in_thread(conn, scope.thread_id):
        for attachment in attachments:
            tools = attachment.get("tools") or []
            if any(t.get("type") == "code_interpreter" for t in tools):
                ids.append(str(attachment["file_id"]))
    return list(dict.fromkeys(ids))


async def _staged(conn: Connection, thread_id: str) -> dict[str, str]:
    """Input files already copied into the thread's sandbox, from its stored calls."""
    staged: dict[str, str] = {}
    for call in await run_steps.builtin_calls_of_thread(conn, thread_id):
        if call.type == "code_interpreter" and call.model is not None:
            staged |= call.model.staged
    return staged
