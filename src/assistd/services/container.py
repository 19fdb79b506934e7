"""The services one process runs, built from settings at the edge."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from assistd.backends.factory import build_registry
from assistd.backends.registry import BackendRegistry
from assistd.config import Settings
from assistd.events.base import EventBus
from assistd.events.memory import MemoryEventBus
from assistd.executor.run_loop import ExecutorConfig, RunExecutor
from assistd.executor.worker import Worker, new_worker_id
from assistd.queue.inprocess import InProcessRunQueue
from assistd.services.assistants import AssistantService
from assistd.services.auth import AuthService
from assistd.services.files import FileService
from assistd.services.messages import MessageService
from assistd.services.models import ModelService
from assistd.services.run_steps import RunStepService
from assistd.services.runs import RunService, RunSettings
from assistd.services.threads import ThreadService
from assistd.store.blobs import BlobStore, LocalBlobStore
from assistd.store.database import Database
from assistd.tokenizer import encoding


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

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        blobs: BlobStore | None = None,
        registry: BackendRegistry | None = None,
    ) -> Services:
        db = db or Database(settings.resolved_database_url)
        blobs = blobs or LocalBlobStore(settings.blob_dir)
        registry = registry or build_registry(settings)
        bus = MemoryEventBus()
        executor = RunExecutor(
            db,
            bus,
            registry,
            ExecutorConfig(
                worker_id=new_worker_id(),
                lease_seconds=settings.run_lease_seconds,
                expires_seconds=settings.run_expires_seconds,
            ),
        )
        worker = Worker(
            db,
            InProcessRunQueue(),
            executor,
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.run_lease_seconds,
        )
        run_settings = RunSettings(
            expires_seconds=settings.run_expires_seconds,
            lease_seconds=settings.run_lease_seconds,
        )
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            auth=AuthService(db, settings.static_keys()),
            assistants=AssistantService(db),
            threads=ThreadService(db),
            messages=MessageService(db),
            files=FileService(db, blobs, settings.max_upload_bytes),
            models=ModelService(settings.model_ids, registry),
            bus=bus,
            registry=registry,
            worker=worker,
            runs=RunService(db, bus, worker, registry, run_settings),
            run_steps=RunStepService(db),
        )

    async def start(self) -> None:
        """Migrate, then start the worker (recovering what a stopped process left)."""
        await self.db.migrate()
        # Load the tokenizers off the event loop now rather than on the first run.
        await asyncio.gather(
            asyncio.to_thread(encoding, "o200k_base"), asyncio.to_thread(encoding, "cl100k_base")
        )
        # SQLite is single-process: whatever is unfinished at start-up was abandoned.
        await self.worker.start(recover_all=self.db.dialect == "sqlite")

    async def stop(self) -> None:
        await self.worker.stop()
        await self.registry.aclose()
        await self.db.dispose()
