"""Several processes' metrics add up (prometheus_client's multiprocess mode), as under
``serve --workers N`` or API and worker processes sharing PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assistd.cli import metrics_directory

COUNT = """
from assistd.observability import metrics
metrics.RUNS.labels("completed").inc()
metrics.TOOL_EXECUTIONS.labels("file_search", "success").inc(2)
metrics.RUN_DURATION.observe(1.5)
metrics.INGESTION_BACKLOG.set(3)
"""
EXPOSE = (
    "import sys; from assistd.observability import metrics; "
    "sys.stdout.write(metrics.exposition()[0].decode())"
)


def _python(code: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_processes_metrics_add_up(tmp_path: Path) -> None:
    _python(COUNT, tmp_path)
    _python(COUNT, tmp_path)
    text = _python(EXPOSE, tmp_path)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("assistd_runs_total", (("status", "completed"),))] == 2
    tools = (("outcome", "success"), ("type", "file_search"))
    assert samples[("assistd_tool_executions_total", tools)] == 4
    assert samples[("assistd_run_duration_seconds_count", ())] == 2
    assert samples[("assistd_ingestion_backlog_files", ())] == 3


def test_serve_with_workers_makes_its_own_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with metrics_directory(1) as single:
        assert single is None
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    with metrics_directory(2) as made:
        assert made is not None
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == made
        assert Path(made).is_dir()
    assert not Path(made).exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_an_operators_directory_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with metrics_directory(4) as used:
        assert used == str(tmp_path)
    assert tmp_path.is_dir()
