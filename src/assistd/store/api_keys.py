"""API keys: the hashes of the keys ``assistd keys create`` made, and their projects."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from assistd import clock
from assistd.store import tables
from assistd.store.database import Connection
from assistd.store.records import ApiKey

_table = tables.api_keys


async def create(conn: Connection, project: str, *, key_hash: str, prefix: str) -> ApiKey:
    """Store a key's hash (never the key) for ``project``; ``prefix`` identifies it to people."""
    key = ApiKey(
        id="key_" + secrets.token_hex(8),
        project=project,
        key_hash=key_hash,
        prefix=prefix,
        created_at=clock.now(),
    )
    await conn.execute(sa.insert(_table).values(**key.values()))
    return key


async def project_of(conn: Connection, key_hash: str) -> str | None:
    """The project of the stored key with this hash, None when there is none."""
    result = await conn.execute(sa.select(_table.c.project).where(_table.c.key_hash == key_hash))
    row = result.first()
    return str(row[0]) if row is not None else None


async def any_stored(conn: Connection) -> bool:
    """Whether at least one key is stored (no key anywhere means open mode)."""
    result = await conn.execute(sa.select(sa.literal(1)).select_from(_table).limit(1))
    return result.first() is not None
