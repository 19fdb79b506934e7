"""Streaming pieces of the code_interpreter tool: sandbox links held back until they end,
and the code decoded from partial JSON arguments."""

from __future__ import annotations

import itertools
import json
from typing import Any

from assistd.tools.citations import CitationStream
from assistd.tools.code_interpreter import CodeInterpreterTool


def _feed(stream: CitationStream, pieces: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    out = [stream.feed(p) for p in pieces]
    out.append(stream.flush())
    return [o for o in out if o[0]]


def test_link_is_released_whole_with_its_annotation() -> None:
    stream = CitationStream({}, files={"out.csv": "file-1"})
    text = "Get sandbox:/mnt/data/out.csv. Or sandbox:/mnt/data/other.csv now"
    pieces = ["Get sand", "box:/mnt/da", "ta/out.c", "sv. Or sandbox:/mnt/data/oth", "er.csv now"]
    released = _feed(stream, pieces)
    assert "".join(t for t, _ in released) == text
    carrying = [(t, n) for t, n in released if n]
    assert len(carrying) == 1
    piece, [note] = carrying[0]
    assert piece.startswith("sandbox:/mnt/data/out.csv.")
    assert note["text"] == "sandbox:/mnt/data/out.csv"  # the full stop is not the name's
    assert text[note["start_index"] : note["end_index"]] == note["text"]
    assert note["file_path"] == {"file_id": "file-1"}
    assert note["index"] == 0


def test_markdown_link_and_citation_in_one_text() -> None:
    stream = CitationStream({(0, 0): "file-doc"}, files={"a/b.png": "file-2"})
    text = "See [plot](sandbox:/mnt/data/a/b.png) and 【0:0†doc】."
    released = _feed(stream, [text[i : i + 5] for i in range(0, len(text), 5)])
    notes = [n for _, found in released for n in found]
    assert [n["type"] for n in notes] == ["file_path", "file_citation"]
    assert [n["index"] for n in notes] == [0, 1]
    for note in notes:
        assert text[note["start_index"] : note["end_index"]] == note["text"]


def test_no_files_means_no_holding() -> None:
    stream = CitationStream({})
    assert stream.feed("sandbox:/mnt/da") == ("sandbox:/mnt/da", [])


def test_code_is_decoded_as_the_arguments_stream() -> None:
    tool = CodeInterpreterTool.__new__(CodeInterpreterTool)
    code = 'print("a\\tb")\nx = "é"'
    arguments = json.dumps({"code": code})
    seen = [tool.input_delta(arguments[:i]) or "" for i in range(len(arguments) + 1)]
    assert seen[-1] == code
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    assert tool.input_delta("print(1)") == "print(1)"  # bare code, not JSON
    assert tool.input_delta('{"other": 1') is None
