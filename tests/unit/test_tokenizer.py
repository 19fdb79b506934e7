"""Token counts match OpenAI's tokenizers, loaded without any network access."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from assistd import tokenizer


def test_known_token_ids() -> None:
    assert tokenizer.encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokenizer.encoding("o200k_base").encode("hello world") == [24912, 2375]


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("meta-llama/Llama-3.1-8B-Instruct", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_per_model(model: str | None, name: str) -> None:
    assert tokenizer.encoding_name(model) == name


def test_count_tokens() -> None:
    assert tokenizer.count_tokens("") == 0
    assert tokenizer.count_tokens("hello world", "gpt-4o") == 2
    # Special-token text in user content is counted as text, never refused.
    assert tokenizer.count_tokens("<|endoftext|>", "gpt-4") > 1


def test_vocabulary_is_installed_offline_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokenizer._install_vocabulary("cl100k_base")
    url = tokenizer._SOURCE_URL.format(name="cl100k_base")
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    # The digest tiktoken pins for cl100k_base: the shipped file is the genuine one.
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    assert digest == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]
