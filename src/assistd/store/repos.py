"""One repository per object table."""

from __future__ import annotations

from assistd.store import tables
from assistd.store.repository import Repository

assistants = Repository(tables.assistants, "assistant")
threads = Repository(tables.threads, "thread")
messages = Repository(tables.messages, "message")
files = Repository(tables.files, "file")
runs = Repository(tables.runs, "run")
run_steps = Repository(tables.run_steps, "step")
vector_stores = Repository(tables.vector_stores, "vector_store")
file_batches = Repository(tables.vector_store_file_batches, "file_batch")
