"""File wire models. Uploads arrive as multipart form fields, parsed in the service."""

from __future__ import annotations

from typing import Literal

from assistd.protocol.common import WireModel

UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
UPLOAD_PURPOSES: tuple[str, ...] = UploadPurpose.__args__  # type: ignore[attr-defined]
FilePurpose = Literal[
    "assistants",
    "assistants_output",
    "batch",
    "batch_output",
    "fine-tune",
    "fine-tune-results",
    "vision",
    "user_data",
    "evals",
]


class FileObject(WireModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None
