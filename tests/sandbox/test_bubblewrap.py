"""The bubblewrap sandbox, for real: what the code can do, see and not see, and what
happens to the host when it misbehaves.

Needs bwrap and the sandbox's Python environment (``scripts/ensure-sandbox``, which the
Makefile runs): without them these tests fail on CI and are skipped elsewhere.
"""

from __future__ import annotations

import ast
import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from assistd.sandbox.base import ExecutionResult
from assistd.sandbox.bubblewrap import BubblewrapSandbox, unavailable_reason

UNAVAILABLE = unavailable_reason()
PNG = b"\x89PNG\r\n\x1a\n"
# The root of the sandbox: /usr and its links, the mount points, nothing of the host else.
ROOT_ENTRIES = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "dev", "proc", "tmp"}
ROOT_ENTRIES |= {"etc", "mnt", "opt"}


@pytest.fixture(autouse=True)
def _needs_bubblewrap() -> None:
    if UNAVAILABLE is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the sandbox cannot run on CI: {UNAVAILABLE}")
    pytest.skip(f"the sandbox cannot run here: {UNAVAILABLE}")


Scenario = Callable[[BubblewrapSandbox], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, **options: Any) -> None:
    """Run ``scenario`` against a fresh sandbox whose threads live in a server-like data
    directory, closing it after."""
    options.setdefault("timeout_seconds", 20)

    async def main() -> None:
        sandbox = BubblewrapSandbox(tmp_path / "data" / "sandboxes", **options)
        try:
            await scenario(sandbox)
        finally:
            await sandbox.aclose()

    asyncio.run(asyncio.wait_for(main(), timeout=180))


def ok(result: ExecutionResult) -> str:
    """The text of an execution that must have succeeded."""
    assert result.error is None, result.error
    return result.text


def failed(result: ExecutionResult, *fragments: str) -> str:
    """The error of an execution that must have failed, checked for ``fragments``."""
    assert result.error is not None, result.text
    for fragment in fragments:
        assert fragment in result.error, result.error
    return result.error


def test_state_persists_and_the_last_expression_is_shown(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        assert ok(await sandbox.execute("t", "import math\nx = 41")) == ""
        assert ok(await sandbox.execute("t", "x + 1")) == "42\n"
        assert ok(await sandbox.execute("t", "print('sqrt', math.sqrt(16))\n_ * 2")) == (
            "sqrt 4.0\n84\n"
        )
        assert ok(await sandbox.execute("t", "None")) == ""
        assert ok(await sandbox.execute("t", "import os\nos.getcwd()")) == "'/mnt/data'\n"

    run(tmp_path, scenario)


def test_output_streams_and_tracebacks(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "print('out')\n"
        "print('err', file=sys.stderr)\n"
        "subprocess.run(['echo', 'from a child'])\n"
        "def fail():\n"
        "    return 1 / 0\n"
        "fail()\n"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        result = await sandbox.execute("t", code)
        assert result.text == "out\nerr\nfrom a child\n"
        error = failed(result, "line 7, in <module>", "return 1 / 0")
        assert error.startswith("Traceback (most recent call last):")
        assert error.endswith("ZeroDivisionError: division by zero")
        assert "driver.py" not in error
        failed(await sandbox.execute("t", "def broken(:\n    pass"), "SyntaxError")
        assert ok(await sandbox.execute("t", "!echo shell magic")) == "shell magic\n"

    run(tmp_path, scenario)


def test_output_is_capped(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        text = ok(await sandbox.execute("t", "print('x' * 50_000)"))
        assert text.startswith("x" * 1000)
        assert "output truncated" in text
        assert len(text) < 2000

    run(tmp_path, scenario, max_output_chars=1000)


def test_csv_is_analysed_with_pandas(tmp_path: Path) -> None:
    csv = b"city,sales\nParis,10\nLyon,30\nParis,20\n"
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/sales.csv')\n"
        "df.groupby('city')['sales'].sum().to_dict()"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.put_file("t", "sales.csv", csv)
        assert ok(await sandbox.execute("t", code)) == "{'Lyon': 30, 'Paris': 30}\n"
        assert ok(await sandbox.execute("t", "int(df['sales'].mean())")) == "20\n"

    run(tmp_path, scenario)


def test_plots_become_images_in_order(tmp_path: Path) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "print('before')\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.show()\n"
        "print('after')\n"
        "plt.figure()\n"
        "plt.bar(['a', 'b'], [3, 5])\n"  # left open: collected when the cell ends
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        result = await sandbox.execute("t", code)
        assert result.error is None, result.error
        kinds = [type(output).__name__ for output in result.outputs]
        assert kinds == ["LogOutput", "ImageOutput", "LogOutput", "ImageOutput"]
        assert result.text.startswith("before\nafter\n")
        assert all(image.startswith(PNG) and len(image) > 1000 for image in result.images)
        # Shown figures are closed: the next cell starts with none.
        assert (await sandbox.execute("t", "plt.get_fignums()")).text == "[]\n"

    run(tmp_path, scenario)


def test_generated_files_are_reported_and_readable(tmp_path: Path) -> None:
    code = (
        "import numpy as np, os\n"
        "np.savetxt('/mnt/data/squares.csv', np.arange(5) ** 2, fmt='%d')\n"
        "os.makedirs('/mnt/data/out', exist_ok=True)\n"
        "open('/mnt/data/out/report.txt', 'w').write('done')\n"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.put_file("t", "input.txt", b"given")
        result = await sandbox.execute("t", code)
        assert result.error is None, result.error
        assert [(change.name, change.size) for change in result.files] == [
            ("out/report.txt", 4),
            ("squares.csv", 11),
        ]
        squares = await sandbox.read_file("t", "squares.csv", max_bytes=1000)
        assert squares == b"0\n1\n4\n9\n16\n"
        assert (sandbox.workdir("t") / "out" / "report.txt").read_text() == "done"
        # The files stay for later executions; unchanged ones are not reported again.
        again = await sandbox.execute(
            "t", "open('input.txt').read() + open('out/report.txt').read()"
        )
        assert ok(again) == "'givendone'\n"
        assert again.files == []
        with pytest.raises(ValueError, match="larger"):
            await sandbox.read_file("t", "squares.csv", max_bytes=3)
        with pytest.raises(ValueError, match="not a file name"):
            await sandbox.read_file("t", "../t/squares.csv", max_bytes=1000)

    run(tmp_path, scenario)


def test_links_planted_by_the_code_are_never_followed(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    code = (
        "import os\n"
        f"os.symlink({str(secret)!r}, '/mnt/data/leak.txt')\n"
        f"os.symlink({str(tmp_path)!r}, '/mnt/data/hostdir')\n"
        "os.mkfifo('/mnt/data/pipe')\n"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        result = await sandbox.execute("t", code)
        assert result.error is None, result.error
        assert result.files == []  # links and FIFOs are not files
        for name in ("leak.txt", "hostdir/host-secret.txt", "pipe"):
            with pytest.raises(FileNotFoundError):
                await sandbox.read_file("t", name, max_bytes=1000)
        # Putting a file where the code left a link replaces the link, not its target.
        await sandbox.put_file("t", "leak.txt", b"uploaded")
        assert secret.read_text() == "host only"
        assert await sandbox.read_file("t", "leak.txt", max_bytes=1000) == b"uploaded"
        assert ok(await sandbox.execute("t", "open('leak.txt').read()")) == "'uploaded'\n"

    run(tmp_path, scenario)


def test_no_network_not_even_the_hosts_loopback(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = (
        "import socket\n"
        "print(socket.if_nameindex())\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
        "try:\n"
        "    socket.create_connection(('1.1.1.1', 53), timeout=5)\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        text = ok(await sandbox.execute("t", code))
        assert text == "[(1, 'lo')]\nConnectionRefusedError\n101\n"  # 101: ENETUNREACH

    with server:
        run(tmp_path, scenario)
        with pytest.raises(TimeoutError):
            server.accept()


def test_host_files_and_environment_are_invisible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTD_SECRET", "s3cr3t-value")
    data = tmp_path / "data"
    data.mkdir()
    (data / "assistd.db").write_text("the server's database")
    paths = [data, data / "assistd.db", tmp_path, Path.home(), Path("/root"), Path("/work")]
    paths += [Path("/home"), Path("/etc/passwd"), Path("/var"), Path.cwd()]
    code = (
        "import os\n"
        f"print([p for p in {[str(p) for p in paths]!r} if os.path.lexists(p)])\n"
        "print(sorted(os.listdir('/')), sorted(os.listdir('/etc')))\n"
        "print('s3cr3t' in open('/proc/self/environ').read(), 'ASSISTD_SECRET' in os.environ)\n"
        "print(os.getuid() != 0, os.listdir('/mnt'))\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        lines = ok(await sandbox.execute("t", code)).splitlines()
        assert lines[0] == "[]"
        root, etc = ast.literal_eval(lines[1].replace("] [", "], ["))
        assert set(root) <= ROOT_ENTRIES
        assert set(etc) <= {"fonts", "ld.so.cache"}
        assert lines[2] == "False False"
        assert lines[3] == "True ['data']"
        assert lines[4] == "['1', '2']"  # bwrap's init and the driver: no host process
        # Nothing outside /mnt/data and /tmp is writable.
        for path in ("/usr/x", "/opt/sandbox-venv/x", "/opt/assistd/x", "/x", "/etc/x"):
            failed(await sandbox.execute("t", f"open({path!r}, 'w')"), "Error")

    run(tmp_path, scenario)


def test_no_new_namespaces_nor_privileges(tmp_path: Path) -> None:
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
        "status = dict(line.split(':\\t') for line in open('/proc/self/status'))\n"
        "caps = [int(status[name], 16) for name in status if name.startswith('Cap')]\n"
        "print(os.getuid() == os.geteuid() != 0, caps, status['NoNewPrivs'].strip())\n"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        lines = ok(await sandbox.execute("t", code)).splitlines()
        assert lines[0] == "-1 1"  # EPERM
        assert lines[1] == "True [0, 0, 0, 0, 0] 1"  # no capability at all, no_new_privs

    run(tmp_path, scenario)


def test_threads_cannot_see_each_other(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.execute("alice", "open('/mnt/data/diary.txt', 'w').write('private')")
        alice = sandbox.workdir("alice")
        code = (
            "import os\n"
            f"print(os.listdir('/mnt/data'), os.path.lexists({str(alice)!r}))\n"
            "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
        )
        assert ok(await sandbox.execute("bob", code)) == "[] False\n['1', '2']\n"
        assert (alice / "diary.txt").read_text() == "private"

    run(tmp_path, scenario)


def test_timeout_interrupts_the_cell_and_keeps_its_state(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.execute("t", "x = 'kept'")
        for code in ("import time\ntime.sleep(100)", "while True:\n    pass"):
            result = await sandbox.execute("t", "print('started')\n" + code, time_limit=1)
            assert result.timed_out
            assert result.text == "started\n"
            failed(result, "ExecutionTimeout", "<cell-", "in <module>")
            after = await sandbox.execute("t", "x")
            assert ok(after) == "'kept'\n"
            assert not after.restarted

    run(tmp_path, scenario)


def test_a_cell_that_ignores_the_interruption_is_killed(tmp_path: Path) -> None:
    code = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.execute("t", "x = 1\nopen('/mnt/data/kept.txt', 'w').write('yes')")
        result = await sandbox.execute("t", code, time_limit=1)
        assert result.timed_out
        failed(result, "was restarted")
        after = await sandbox.execute("t", "print(open('kept.txt').read())\nx")
        assert after.restarted
        assert after.text == "yes\n"
        failed(after, "NameError")

    run(tmp_path, scenario, grace_seconds=1)


def test_a_crash_restarts_the_kernel(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        suicide = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
        failed(await sandbox.execute("t", suicide), "crashed", "was restarted")
        after = await sandbox.execute("t", "1 + 1")
        assert ok(after) == "2\n"
        assert after.restarted

    run(tmp_path, scenario)


def test_memory_bombs_are_contained(tmp_path: Path) -> None:
    grow = (
        "def grow():\n"
        "    chunks = []\n"
        "    while True:\n"
        "        chunks.append(bytearray(16 * 1024 * 1024))\n"
        "grow()\n"
    )

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.execute("t", "kept = 'yes'")
        for code in ("x = bytearray(8 * 1024 ** 3)", "import numpy\nnumpy.ones(10 ** 10)", grow):
            failed(await sandbox.execute("t", code), "MemoryError")
            assert ok(await sandbox.execute("t", "kept")) == "'yes'\n"

    run(tmp_path, scenario, memory_mb=512)


def test_fork_bombs_are_contained(tmp_path: Path) -> None:
    counted = (
        "import os, time\n"
        "children = 0\n"
        "while children < 1000:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    children += 1\n"
        "children"
    )
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    shell_bomb = "import subprocess\nsubprocess.run(['bash', '-c', ':(){ :|:& };:'])"
    processes = "sorted(p for p in __import__('os').listdir('/proc') if p.isdigit())"

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        children = int(ok(await sandbox.execute("t", counted)))
        assert 0 < children < 32
        # The processes a cell leaves behind end with it.
        assert ok(await sandbox.execute("t", processes)) == "['1', '2']\n"

        async def meanwhile() -> None:
            await asyncio.sleep(1)
            # Another thread's sandbox, and the host, can still start processes.
            assert (
                ok(
                    await sandbox.execute(
                        "other", "import subprocess\nsubprocess.run(['true']).returncode"
                    )
                )
                == "0\n"
            )
            host = await asyncio.create_subprocess_exec("true")
            assert await host.wait() == 0

        result, _ = await asyncio.gather(sandbox.execute("t", bomb, time_limit=4), meanwhile())
        assert result.timed_out
        await sandbox.execute("t", shell_bomb, time_limit=4)
        assert ok(await sandbox.execute("t", processes)) == "['1', '2']\n"
        assert ok(await sandbox.execute("t", "1 + 1")) == "2\n"
        host = await asyncio.create_subprocess_exec("true")
        assert await host.wait() == 0

    run(tmp_path, scenario, max_processes=32)


def test_file_size_is_limited(tmp_path: Path) -> None:
    code = "open('/mnt/data/big.bin', 'wb').write(b'x' * 3 * 1024 * 1024)"

    async def scenario(sandbox: BubblewrapSandbox) -> None:
        failed(await sandbox.execute("t", code), "File too large")

    run(tmp_path, scenario, max_file_mb=1)


def test_idle_kernels_are_reclaimed_and_restarted(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.execute("t", "x = 1\nopen('/mnt/data/f.txt', 'w').write('kept')")
        for _ in range(200):
            if not sandbox.process_ids():
                break
            await asyncio.sleep(0.05)
        assert sandbox.process_ids() == {}
        after = await sandbox.execute("t", "print(open('f.txt').read())\nx")
        assert after.restarted
        assert after.text == "kept\n"
        failed(after, "NameError")

    run(tmp_path, scenario, idle_seconds=0.2)


def test_least_recently_used_kernel_makes_room(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.execute("a", "x = 'a'")
        await sandbox.execute("b", "x = 'b'")
        assert list(sandbox.process_ids()) == ["b"]
        evicted = await sandbox.execute("a", "x")
        assert evicted.restarted
        failed(evicted, "NameError")
        # Concurrent executions beyond the limit wait their turn rather than fail.
        results = await asyncio.gather(*(sandbox.execute(f"c{i}", "1 + 1") for i in range(3)))
        assert [ok(result) for result in results] == ["2\n"] * 3

    run(tmp_path, scenario, max_live=1)


def test_reset_and_remove(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        await sandbox.execute("t", "x = 1\nopen('/mnt/data/f.txt', 'w').write('kept')")
        await sandbox.reset("t")
        after = await sandbox.execute("t", "import os\nos.listdir()")
        assert after.restarted
        assert ok(after) == "['f.txt']\n"
        await sandbox.remove("t")
        assert not (tmp_path / "data" / "sandboxes" / "t").exists()
        assert ok(await sandbox.execute("t", "os = __import__('os')\nos.listdir()")) == "[]\n"
        with pytest.raises(ValueError, match="invalid thread id"):
            await sandbox.execute("../escape", "1")

    run(tmp_path, scenario)


def test_a_cancelled_execution_does_not_leak_into_the_next(tmp_path: Path) -> None:
    async def scenario(sandbox: BubblewrapSandbox) -> None:
        slow = sandbox.execute("t", "import time\ntime.sleep(30)\nprint('late')")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow, timeout=1)
        after = await sandbox.execute("t", "print('next')")
        assert after.text == "next\n"
        assert after.restarted

    run(tmp_path, scenario)
