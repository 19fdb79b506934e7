"""The services one process runs, built from settings at the edge."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from assistd.backends.factory import build_registry
from assistd.backends.local_model import BUNDLED_NAME
from assistd.backends.registry import BackendRegistry
from assistd.config import Settings
from assistd.embeddings.base import EmbedderRegistry
from assistd.embeddings.factory import build_embedders
from assistd.events.base import EventBus
from assistd.events.factory import build_bus
from assistd.executor.run_loop import ExecutorConfig, RunExecutor
from assistd.executor.worker import Worker, new_worker_id
from assistd.queue.factory import build_queue
from assistd.retrieval.factory import build_chunk_index
from assistd.retrieval.index import ChunkIndex
from assistd.retrieval.ingestion import IngestionConfig, IngestionWorker
from assistd.sandbox import bubblewrap
from assistd.sandbox.bubblewrap import BubblewrapSandbox
from assistd.services.assistant_chat import AssistantChat
from assistd.services.assistants import AssistantService
from assistd.services.auth import AuthService
from assistd.services.chat import ChatService
from assistd.services.embeddings import EmbeddingService
from assistd.services.files import FileService
from assistd.services.messages import MessageService
from assistd.services.models import Listed, ModelService
from assistd.services.ratelimit import RequestLimiter, build_limiter
from assistd.services.run_steps import RunStepService
from assistd.services.runs import RunService, RunSettings
from assistd.services.threads import ThreadService
from assistd.services.usage import UsageService
from assistd.services.vector_store_files import VectorStoreFileService
from assistd.services.vector_store_search import VectorStoreSearchService
from assistd.services.vector_stores import VectorStoreService
from assistd.store.blobs import BlobStore, LocalBlobStore
from assistd.store.database import Database
from assistd.tokenizer import encoding
from assistd.tools.base import Tool, ToolRegistry
from assistd.tools.code_interpreter import CodeInterpreterTool
from assistd.tools.file_search import FileSearchTool

logger = logging.getLogger("assistd")


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    auth: AuthService
    assistants: AssistantService
    threads: ThreadService
    messages: MessageService
    files: FileService
    models: ModelService
    bus: EventBus
    registry: BackendRegistry
    worker: Worker
    runs: RunService
    run_steps: RunStepService
    embedders: EmbedderRegistry
    embeddings: EmbeddingService
    chat: ChatService
    chunk_index: ChunkIndex | None
    ingestion: IngestionWorker
    vector_stores: VectorStoreService
    vector_store_files: VectorStoreFileService
    vector_store_search: VectorStoreSearchService
    usage: UsageService
    # None when ASSISTD_CODE_INTERPRETER is off.
    code_interpreter: CodeInterpreterTool | None = None
    # None when ASSISTD_RATE_LIMIT_RPM is unset.
    rate_limiter: RequestLimiter | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        blobs: BlobStore | None = None,
        registry: BackendRegistry | None = None,
        embedders: EmbedderRegistry | None = None,
        chunk_index: ChunkIndex | None = None,
    ) -> Services:
        db = db or Database(settings.resolved_database_url)
        blobs = blobs or LocalBlobStore(settings.blob_dir)
        registry = registry or build_registry(settings)
        embedders = embedders if embedders is not None else build_embedders(settings)
        chunk_index = chunk_index if chunk_index is not None else build_chunk_index(db.dialect)
        bus = build_bus(settings)
        tools: dict[str, Tool] = {
            "file_search": FileSearchTool(
                db, chunk_index, embedders, settings.file_search_embedding_model
            )
        }
        code_interpreter = None
        if settings.code_interpreter:
            sandbox = BubblewrapSandbox(
                settings.resolved_sandbox_dir,
                environment=settings.sandbox_environment,
                memory_mb=settings.sandbox_memory_mb,
                timeout_seconds=settings.sandbox_timeout_seconds,
                idle_seconds=settings.sandbox_idle_seconds,
                max_live=settings.sandbox_max_live,
            )
            code_interpreter = CodeInterpreterTool(
                db, blobs, sandbox, max_file_bytes=settings.max_upload_bytes
            )
            tools["code_interpreter"] = code_interpreter
        tool_registry = ToolRegistry(tools)
        worker_id = new_worker_id()
        executor = RunExecutor(
            db,
            bus,
            registry,
            ExecutorConfig(expires_seconds=settings.run_expires_seconds),
            tool_registry,
        )
        queue = build_queue(settings, db, worker_id=worker_id)
        worker = Worker(
            db,
            queue,
            executor,
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.run_lease_seconds,
        )
        ingestion = IngestionWorker(
            db,
            blobs,
            embedders,
            chunk_index,
            IngestionConfig(
                worker_id=new_worker_id(),
                lease_seconds=settings.run_lease_seconds,
                concurrency=settings.ingestion_concurrency,
                embedding_model=settings.file_search_embedding_model,
            ),
        )
        usage = UsageService(db, settings.project_token_budgets)
        # Only projects with a budget pay for the check (a read per new run or completion).
        check_budget = usage.check_budget if usage.budgets else None
        run_settings = RunSettings(
            expires_seconds=settings.run_expires_seconds,
            stream_idle_seconds=settings.stream_keepalive_seconds,
        )
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            auth=AuthService(db, settings.static_keys()),
            assistants=AssistantService(db),
            threads=ThreadService(
                db, bus, code_interpreter.sandbox if code_interpreter is not None else None
            ),
            messages=MessageService(db),
            files=FileService(db, blobs, settings.max_upload_bytes, chunk_index),
            models=ModelService(
                settings.model_ids, registry, [Listed(*e) for e in embedders.listed()]
            ),
            bus=bus,
            registry=registry,
            worker=worker,
            runs=RunService(db, bus, queue, registry, run_settings, check_budget=check_budget),
            run_steps=RunStepService(db),
            embedders=embedders,
            embeddings=EmbeddingService(embedders),
            chat=ChatService(
                registry,
                AssistantChat(db, registry, tool_registry, code_interpreter),
                check_budget=check_budget,
                record_usage=usage.record,
            ),
            chunk_index=chunk_index,
            ingestion=ingestion,
            vector_stores=VectorStoreService(db, ingestion, chunk_index),
            vector_store_files=VectorStoreFileService(db, ingestion, chunk_index),
            vector_store_search=VectorStoreSearchService(
                db, embedders, chunk_index, embedding_model=settings.file_search_embedding_model
            ),
            usage=usage,
            code_interpreter=code_interpreter,
            rate_limiter=build_limiter(
                settings.rate_limit_rpm, settings.redis_url, settings.redis_prefix
            ),
        )

    async def start(self) -> None:
        """Migrate, then start the worker (recovering what a stopped process left)."""
        await self._prepare()
        # SQLite is single-process: whatever is unfinished at start-up was abandoned.
        if self.settings.executor:
            await self.worker.start(recover_all=self.db.dialect == "sqlite")
        await self.ingestion.start(recover_all=self.db.dialect == "sqlite")

    async def start_worker(self) -> None:
        """An executor-only process (``assistd worker``): no HTTP, no ingestion."""
        await self._prepare()
        await self.worker.start(recover_all=False)

    async def _prepare(self) -> None:
        await self.db.migrate()
        missing = self.registry.missing.get(BUNDLED_NAME)
        if missing is not None:
            logger.warning("%s; until then, requests for it answer 400", missing)
        if self.code_interpreter is not None:
            # Checked once, off the event loop (it runs bwrap); runs still offer the tool,
            # and its calls answer with the reason, so the user sees why nothing ran.
            reason = await asyncio.to_thread(
                bubblewrap.unavailable_reason, self.settings.sandbox_environment
            )
            if reason is not None:
                logger.warning("code_interpreter cannot run here: %s", reason)
            self.code_interpreter.unavailable = reason
        # Load the tokenizers off the event loop now rather than on the first run.
        await asyncio.gather(
            asyncio.to_thread(encoding, "o200k_base"), asyncio.to_thread(encoding, "cl100k_base")
        )

    async def stop(self) -> None:
        await self.worker.stop()
        await self.worker.queue.close()
        await self.ingestion.stop()
        await self.bus.aclose()
        if self.code_interpreter is not None:
            await self.code_interpreter.sandbox.aclose()
        await self.registry.aclose()
        await self.embedders.aclose()
        if self.rate_limiter is not None:
            await self.rate_limiter.aclose()
        await self.db.dispose()
