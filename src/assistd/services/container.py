"""The services one process runs, built from settings at the edge."""

from __future__ import annotations

from dataclasses import dataclass

from assistd.config import Settings
from assistd.services.assistants import AssistantService
from assistd.services.auth import AuthService
from assistd.services.files import FileService
from assistd.services.messages import MessageService
from assistd.services.models import ModelService
from assistd.services.threads import ThreadService
from assistd.store.blobs import BlobStore, LocalBlobStore
from assistd.store.database import Database


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

    @classmethod
    def build(
        cls, settings: Settings, *, db: Database | None = None, blobs: BlobStore | None = None
    ) -> Services:
        db = db or Database(settings.resolved_database_url)
        blobs = blobs or LocalBlobStore(settings.blob_dir)
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            auth=AuthService(db, settings.static_keys()),
            assistants=AssistantService(db),
            threads=ThreadService(db),
            messages=MessageService(db),
            files=FileService(db, blobs, settings.max_upload_bytes),
            models=ModelService(settings.model_ids),
        )
