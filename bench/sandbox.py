"""The code interpreter's bubblewrap sandbox: start-up, round trips, and how many fit.

- cold start: the first execution in a new thread (bwrap, the sandbox's Python, the
  driver), of ``1 + 1`` and of ``import numpy, pandas``;
- warm round trips: executions in a live kernel, ``1 + 1``, a pandas aggregate and a
  matplotlib figure rendered to PNG, p50 and p95;
- capacity: SANDBOXES idle kernels at once, each having imported numpy and pandas, and
  what each costs: RSS and PSS of its processes (from /proc; PSS shares the pages of
  /usr and the read-only environment fairly between sandboxes) and the drop of
  MemAvailable, then how many the available memory would hold at that cost.

Run as the server would (as root here: each sandbox gets its own host uid)::

    .venv/bin/python bench/sandbox.py [--cold 10] [--warm 200] [--sandboxes 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from assistd.sandbox.bubblewrap import BubblewrapSandbox, unavailable_reason

PANDAS = (
    "import pandas as pd, numpy as np\n"
    "df = pd.DataFrame({'k': np.arange(1000) % 7, 'v': np.arange(1000.0)})\n"
    "df.groupby('k')['v'].mean().round(1).to_dict()"
)
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> None:
    print(
        f"{name:<44} p50 {statistics.median(values):8.1f} ms   p95 "
        f"{percentile(values, 0.95):8.1f} ms   min {min(values):8.1f} ms   n={len(values)}"
    )


async def timed(sandbox: BubblewrapSandbox, thread_id: str, code: str) -> float:
    started = time.perf_counter()
    result = await sandbox.execute(thread_id, code)
    elapsed = (time.perf_counter() - started) * 1000
    if result.error is not None:
        raise RuntimeError(result.error)
    return elapsed


def descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as file:
                    pending += [int(child) for child in file.read().split()]
            except FileNotFoundError:
                pass
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process, in KiB."""
    fields = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            for line in file:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Pss"):
                    fields[name] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return fields.get("Rss", 0), fields.get("Pss", 0)


def available_kib() -> int:
    with open("/proc/meminfo") as file:
        for line in file:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


async def latency(root: Path, cold: int, warm: int) -> None:
    sandbox = BubblewrapSandbox(root, max_live=4)
    try:
        row("cold start: 1 + 1", [await timed(sandbox, f"cold{i}", "1 + 1") for i in range(cold)])
        await sandbox.aclose()
        sandbox = BubblewrapSandbox(root, max_live=4)
        imports = [await timed(sandbox, f"imp{i}", "import numpy, pandas") for i in range(cold)]
        row("cold start: import numpy, pandas", imports)
        for name, code in (("1 + 1", "1 + 1"), ("pandas groupby", PANDAS), ("plot to PNG", PLOT)):
            await timed(sandbox, "warm", code)
            times = [await timed(sandbox, "warm", code) for _ in range(warm)]
            row(f"warm round trip: {name}", times)
    finally:
        await sandbox.aclose()


async def capacity(root: Path, count: int) -> None:
    sandbox = BubblewrapSandbox(root, max_live=count)
    try:
        before = available_kib()
        for i in range(count):
            await timed(sandbox, f"idle{i}", "import numpy, pandas")
        await asyncio.sleep(1)
        after = available_kib()
        rss, pss = [], []
        for pid in sandbox.process_ids().values():
            usage = [memory_kib(process) for process in descendants(pid)]
            rss.append(sum(r for r, _ in usage) / 1024)
            pss.append(sum(p for _, p in usage) / 1024)
        started = time.perf_counter()
        await asyncio.gather(*(sandbox.execute(f"idle{i}", "1 + 1") for i in range(count)))
        together = (time.perf_counter() - started) * 1000
        drop = (before - after) / 1024 / count
        print(
            f"{count} idle sandboxes with numpy and pandas imported: per sandbox "
            f"RSS {statistics.mean(rss):.1f} MiB, PSS {statistics.mean(pss):.1f} MiB, "
            f"MemAvailable drop {drop:.1f} MiB"
        )
        print(f"1 + 1 in all {count} at once: {together:.1f} ms")
        cost = max(drop, statistics.mean(pss))
        print(
            f"MemAvailable before: {before / 1024:.0f} MiB, room for about "
            f"{before / 1024 / cost:.0f} such sandboxes at {cost:.1f} MiB each"
        )
    finally:
        await sandbox.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--sandboxes", type=int, default=16)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"the sandbox cannot run here: {reason}")
    print(f"bubblewrap sandbox, {os.cpu_count()} cores, running as uid {os.geteuid()}")
    with tempfile.TemporaryDirectory(prefix="assistd-bench-sandbox-") as folder:
        asyncio.run(latency(Path(folder) / "latency", args.cold, args.warm))
        asyncio.run(capacity(Path(folder) / "capacity", args.sandboxes))


if __name__ == "__main__":
    main()
