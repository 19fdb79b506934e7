"""The code interpreter's kernel: a persistent Python REPL run inside the sandbox.

A small driver rather than a Jupyter kernel: it starts in tens of milliseconds instead of
most of a second, needs no sockets (the sandbox has no network at all, not even loopback
for ZeroMQ) and nothing but the standard library, and its one channel to the host is the
pair of pipes the sandbox was started with.

Protocol, JSON lines. Once its limits are applied and its streams redirected it writes
``{"ready": true}``. Then, for each request line ``{"code": "...", "timeout": 60}`` on
stdin, one reply line on stdout::

    {"outputs": [{"type": "text", "text": "..."}, {"type": "image", "png": "<base64>"}],
     "error": "Traceback ..." or null, "timed_out": false}

End of input ends it. The cell behaves as in Jupyter: variables, imports and the working
directory persist; the value of a last expression statement is printed (and kept as
``_``); stdout and stderr, of the cell and of the processes it starts, are captured in
order; matplotlib figures become PNG images at ``plt.show()`` and at the end of the cell.
"""

from __future__ import annotations

import ast
import base64
import builtins
import importlib
import io
import json
import linecache
import os
import re
import resource
import signal
import sys
import time
import traceback
import types
from typing import Any, BinaryIO

MIB = 1024 * 1024
_NOTHING = object()  # a cell that does not end with an expression
_MAGIC = re.compile(r"^(?P<indent>[ \t]*)(?P<kind>!|%pip\b|%matplotlib\b|%config\b)(?P<rest>.*)$")


class ExecutionTimeout(BaseException):
    """Raised in the cell when its wall-clock limit passes.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` in the cell does
    not swallow it.
    """


class Options:
    """The driver's command line (a plain class: dataclasses would add to start-up)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.memory_mb: int = values["memory-mb"]
        self.processes: int = values["processes"]
        self.file_mb: int = values["file-mb"]
        self.cpu_seconds: int = values["cpu-seconds"]
        self.open_files: int = values["open-files"]
        self.nice: int = values["nice"]
        self.max_output_chars: int = values["max-output-chars"]
        self.capture: str = values["capture"]
        self.reap: bool = values["reap"]


def apply_limits(args: Options) -> None:
    """Limits on this process and everything it starts, set before any cell runs.

    Hard and soft limits are equal, and a process cannot raise a hard limit without
    CAP_SYS_RESOURCE, which nothing in the sandbox has. RLIMIT_NPROC counts the tasks of
    the sandbox's user: the host gives each live sandbox a user of its own (or a user
    namespace of its own), so that is this sandbox's processes and threads.
    """
    limits = (
        (resource.RLIMIT_AS, args.memory_mb * MIB),
        (resource.RLIMIT_NPROC, args.processes),
        (resource.RLIMIT_FSIZE, args.file_mb * MIB),
        (resource.RLIMIT_CPU, args.cpu_seconds),
        (resource.RLIMIT_NOFILE, args.open_files),
        (resource.RLIMIT_CORE, 0),
    )
    for which, value in limits:
        if value >= 0:
            resource.setrlimit(which, (value, value))
    if args.nice > 0:
        os.nice(args.nice)


def rewrite_magics(code: str) -> str:
    """The few IPython line magics models write out of habit, as plain Python.

    ``!cmd`` and ``%pip ...`` run through the shell; ``%matplotlib`` and ``%config`` do
    nothing (figures are always captured). Only used when the cell is not valid Python.
    """
    lines = []
    for line in code.splitlines():
        match = _MAGIC.match(line)
        if match is None:
            lines.append(line)
            continue
        indent, kind, rest = match["indent"], match["kind"], match["rest"]
        if kind == "!":
            command = rest
        elif kind == "%pip":
            command = "pip" + rest
        else:
            lines.append(f"{indent}pass")
            continue
        # "; pass": a statement, so that its result is not shown as the cell's value.
        lines.append(f"{indent}__import__('subprocess').run({command!r}, shell=True); pass")
    return "\n".join(lines)


class Kernel:
    """Runs cells in one persistent ``__main__`` namespace and captures what they show."""

    def __init__(self, capture_fd: int, *, max_output_chars: int, reap: bool) -> None:
        self.pid = os.getpid()
        self.capture_fd = capture_fd
        self.max_output_chars = max_output_chars
        self.reap = reap
        # The namespace is a real __main__ module, so that pickle and multiprocessing find
        # the classes and functions that cells define.
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = self.module
        self.count = 0
        self.outputs: list[dict[str, str]] = []
        self.offset = 0
        self.budget = max_output_chars
        self.armed = False
        signal.signal(signal.SIGALRM, self._on_alarm)
        try:
            backend: Any = importlib.import_module("inline_backend")
            backend.display = self._display_figures
        except ImportError:  # the host did not mount it; figures are still collected
            pass

    def execute(self, code: str, timeout: float) -> dict[str, Any]:
        self.count += 1
        self._begin()
        error: str | None = None
        timed_out = False
        try:
            try:
                self._arm(timeout)
                value = self._run(code)
                self._disarm()
                if value is not _NOTHING and value is not None:
                    self.module.__dict__["_"] = value
                    print(repr(value))
            finally:
                self._disarm()
                if os.getpid() != self.pid:
                    # A process the cell forked came back here: only the driver talks to
                    # the host.
                    os._exit(0)
        except ExecutionTimeout as exc:
            timed_out = True
            error = self._format(exc)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included, as Jupyter
            error = self._format(exc)
        self._display_figures()
        self._flush_text()
        self._reap()
        if error is not None and len(error) > self.max_output_chars:
            error = error[: self.max_output_chars] + "\n[... traceback truncated ...]"
        return {"outputs": self.outputs, "error": error, "timed_out": timed_out}

    def _run(self, code: str) -> Any:
        filename = f"<cell-{self.count}>"
        source, tree = self._parse(code, filename)
        # Tracebacks quote the cell's lines, as they would a file's.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body[-1].value)
            del tree.body[-1]
        exec(compile(tree, filename, "exec"), self.module.__dict__)
        if last is None:
            return _NOTHING
        return eval(compile(last, filename, "eval"), self.module.__dict__)

    @staticmethod
    def _parse(code: str, filename: str) -> tuple[str, ast.Module]:
        try:
            return code, ast.parse(code, filename)
        except SyntaxError as error:
            rewritten = rewrite_magics(code)
            if rewritten == code:
                raise
            try:
                return rewritten, ast.parse(rewritten, filename)
            except SyntaxError:
                raise error from None

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            raise ExecutionTimeout("the cell ran past its time limit and was interrupted")

    def _arm(self, timeout: float) -> None:
        if timeout > 0:
            self.armed = True
            signal.setitimer(signal.ITIMER_REAL, timeout)

    def _disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    @staticmethod
    def _format(exc: BaseException) -> str:
        """The traceback as Python prints it, less the driver's own frames (the cell's
        caller, and the alarm handler that interrupted it)."""
        report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        pending = [report]
        while pending:
            current = pending.pop()
            frames = [frame for frame in current.stack if frame.filename != __file__]
            current.stack = traceback.StackSummary.from_list(frames)
            pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        return "".join(report.format()).rstrip("\n")

    def _begin(self) -> None:
        self._flush_streams()
        # fds 1 and 2 share this file's offset, so rewinding it rewinds theirs.
        os.ftruncate(self.capture_fd, 0)
        os.lseek(self.capture_fd, 0, os.SEEK_SET)
        self.outputs = []
        self.offset = 0
        self.budget = self.max_output_chars

    @staticmethod
    def _flush_streams() -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # a full /tmp, or a stream the cell replaced and broke
                pass

    def _flush_text(self) -> None:
        """Move what fds 1 and 2 received since the last call into the outputs."""
        self._flush_streams()
        end = os.fstat(self.capture_fd).st_size
        if end <= self.offset:
            return
        wanted = min(end - self.offset, max(self.budget, 0) * 4)
        text = os.pread(self.capture_fd, wanted, self.offset).decode("utf-8", "replace")
        skipped = end - self.offset - wanted
        self.offset = end
        if len(text) > self.budget:
            skipped += len(text[self.budget :].encode())
            text = text[: max(self.budget, 0)]
        self.budget -= len(text)
        if skipped > 0:
            text += f"\n[... output truncated: {skipped} more bytes ...]\n"
        if not text:
            return
        if self.outputs and self.outputs[-1]["type"] == "text":
            self.outputs[-1]["text"] += text
        else:
            self.outputs.append({"type": "text", "text": text})

    def _display_figures(self) -> None:
        """Render every open matplotlib figure as PNG, after the text printed so far."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        self._flush_text()
        helpers: Any = sys.modules["matplotlib._pylab_helpers"]
        for manager in helpers.Gcf.get_all_fig_managers():
            buffer = io.BytesIO()
            try:
                manager.canvas.figure.savefig(buffer, format="png", bbox_inches="tight")
            except Exception as exc:
                print(f"Figure {manager.num} could not be rendered: {exc!r}", file=sys.stderr)
                continue
            png = base64.b64encode(buffer.getvalue()).decode("ascii")
            self.outputs.append({"type": "image", "png": png})
        pyplot.close("all")
        self._flush_text()

    def _reap(self) -> None:
        """End every process the cell left behind (the sandbox's pid namespace has only
        those, the driver and its init): a fork bomb, or a background job, does not outlive
        its cell."""
        if not self.reap:
            return
        for _ in range(200):
            try:
                os.kill(-1, signal.SIGKILL)  # every process we may signal but ourselves
            except ProcessLookupError:
                return
            # Killed processes linger as zombies (which kill() still finds) until they are
            # reaped: ours by us, orphans by the namespace's init.
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
            time.sleep(0.005)


def serve(kernel: Kernel, requests: BinaryIO, replies: BinaryIO) -> None:
    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message).encode("ascii") + b"\n")
        replies.flush()

    reply({"ready": True})
    for line in requests:
        request = json.loads(line)
        reply(kernel.execute(str(request["code"]), float(request.get("timeout") or 0)))


OPTIONS = {  # --name=value, all integers; -1: no limit
    "memory-mb": -1,
    "processes": -1,
    "file-mb": -1,
    "cpu-seconds": -1,
    "open-files": -1,
    "nice": 0,
    "max-output-chars": 20_000,
}


def parse_arguments(argv: list[str]) -> Options:
    """``--name=value`` options and ``--reap`` (argparse would add a tenth to start-up).

    ``--reap``: kill the processes a cell leaves behind; only in a pid namespace of our
    own. ``--capture=PATH``: the file that collects the cell's fds 1 and 2.
    """
    values: dict[str, Any] = dict(OPTIONS, capture="/tmp/.assistd-cell-output", reap=False)
    for argument in argv:
        name, _, value = argument.removeprefix("--").partition("=")
        if name == "reap" and not value:
            values["reap"] = True
        elif name == "capture" and value:
            values["capture"] = value
        elif name in OPTIONS:
            values[name] = int(value)
        else:
            raise SystemExit(f"driver: unknown option {argument!r}")
    return Options(values)


def main() -> None:
    args = parse_arguments(sys.argv[1:])
    if args.reap and os.getpid() > 2:
        # kill(-1) outside a pid namespace of our own would reach every process of the user.
        raise SystemExit("driver: --reap needs a pid namespace of its own (pid 1 or 2)")
    apply_limits(args)

    # The protocol keeps private copies of the pipes; the cell's fd 0 reads nothing and
    # its fds 1 and 2, inherited by what it starts, write to the capture file.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    capture = os.open(args.capture, flags, 0o600)
    os.dup2(capture, 1)
    os.dup2(capture, 2)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True, errors="backslashreplace")
    sys.argv = [""]
    kernel = Kernel(capture, max_output_chars=args.max_output_chars, reap=args.reap)
    serve(kernel, requests, replies)


if __name__ == "__main__":
    main()
