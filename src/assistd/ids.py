"""Object ids with OpenAI's prefixes that also sort in creation order.

An id is ``<prefix><10 chars: sort key><14 chars: random>`` in base62, 24 characters after
the prefix like OpenAI's. The sort key is ``milliseconds << 16 | counter`` and strictly
increases within a process, so two objects made in the same second (or millisecond) still
list in the order they were made. Lists order by the key, and a pagination cursor is
decoded from the id itself: it works even when the object it names was deleted since.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX: Final = {c: i for i, c in enumerate(ALPHABET)}
KEY_CHARS: Final = 10
RANDOM_CHARS: Final = 14
_RANDOM_SPACE: Final = 62**RANDOM_CHARS

PREFIXES: Final = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "call": "call_",
    "file": "file-",
    "vector_store": "vs_",
    "file_batch": "vsfb_",
}

_lock = threading.Lock()
_last_key = 0


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def next_sort_key() -> int:
    """A strictly increasing 57-bit integer anchored to wall-clock milliseconds."""
    global _last_key
    with _lock:
        key = max(time.time_ns() // 1_000_000 << 16, _last_key + 1)
        _last_key = key
        return key


def new_id(kind: str) -> str:
    """A fresh id for an object of ``kind`` (a key of ``PREFIXES``)."""
    # One draw of the whole random part: a draw per character costs a urandom call each.
    random_part = _encode(secrets.randbelow(_RANDOM_SPACE), RANDOM_CHARS)
    return PREFIXES[kind] + _encode(next_sort_key(), KEY_CHARS) + random_part


def sort_key_of(object_id: str, kind: str) -> int | None:
    """The sort key inside an id of ``kind``, or None when it is not such an id."""
    prefix = PREFIXES[kind]
    body = object_id[len(prefix) :]
    if not object_id.startswith(prefix) or len(body) != KEY_CHARS + RANDOM_CHARS:
        return None
    value = 0
    for char in body[:KEY_CHARS]:
        digit = _INDEX.get(char)
        if digit is None:
            return None
        value = value * 62 + digit
    if any(c not in _INDEX for c in body[KEY_CHARS:]):
        return None
    return value


def key_of_own(object_id: str, kind: str) -> int:
    """The sort key of an id this server made for an object of ``kind`` (it always has one)."""
    key = sort_key_of(object_id, kind)
    if key is None:
        raise ValueError(f"{object_id!r} is not an id of a {kind}")
    return key
