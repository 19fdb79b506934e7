"""Citation markers and sandbox links in streamed text → annotations (``tools.citations``).

Indices are pinned as literals: an annotation's ``start_index``/``end_index`` are what a
client slices the message text with, so an off-by-one is a visible bug, not a detail.
"""

from __future__ import annotations

from typing import Any

import pytest

from assistd.tools.citations import (
    CitationStream,
    MessageSources,
    find_citations,
    find_file_paths,
)
from tests.unit.loop_support import annotation

Annotation = dict[str, Any]
SOURCES = {(0, 0): "file-a", (0, 1): "file-b", (1, 0): "file-c", (12, 34): "file-big"}
FILES = {"out.csv": "file-out", "plot.png": "file-plot", "v1.": "file-dot"}


def cite(text: str, start: int, file_id: str, index: int | None = None) -> Annotation:
    return annotation("file_citation", text, start, file_id, index)


def path(text: str, start: int, file_id: str, index: int | None = None) -> Annotation:
    return annotation("file_path", text, start, file_id, index)


def stream_all(stream: CitationStream, pieces: list[str]) -> list[tuple[str, list[Annotation]]]:
    """Every (text, annotations) the stream gives for ``pieces`` and its final flush."""
    out = [stream.feed(piece) for piece in pieces]
    out.append(stream.flush())
    return out


def joined(out: list[tuple[str, list[Annotation]]]) -> tuple[str, list[Annotation]]:
    return "".join(t for t, _ in out), [n for _, found in out for n in found]


# --- markers in one piece


def test_marker_in_one_feed_is_annotated_with_its_offsets() -> None:
    stream = CitationStream(dict(SOURCES))
    text = "Cats purr【0:0†cats.txt】."
    assert stream.feed(text) == (text, [cite("【0:0†cats.txt】", 9, "file-a", 0)])
    # The literal offsets, not only the helper's arithmetic.
    assert stream.found[0]["start_index"] == 9
    assert stream.found[0]["end_index"] == 23
    assert text[9:23] == "【0:0†cats.txt】"
    assert stream.pending == ""
    assert stream.sent == 24


def test_adjacent_markers_get_consecutive_indices() -> None:
    stream = CitationStream(dict(SOURCES))
    text = "A【0:0†a】【0:1†b】【1:0†c】"
    released, notes = stream.feed(text)
    assert released == text
    assert notes == [
        cite("【0:0†a】", 1, "file-a", 0),
        cite("【0:1†b】", 8, "file-b", 1),
        cite("【1:0†c】", 15, "file-c", 2),
    ]
    assert [text[n["start_index"] : n["end_index"]] for n in notes] == [
        "【0:0†a】",
        "【0:1†b】",
        "【1:0†c】",
    ]


def test_numbers_of_several_digits_name_their_source() -> None:
    stream = CitationStream(dict(SOURCES))
    assert stream.feed("x【12:34†big】") == (
        "x【12:34†big】",
        [cite("【12:34†big】", 1, "file-big", 0)],
    )


def test_offsets_count_code_points() -> None:
    # An emoji is one character in Python (two in UTF-16): the index after it is 2, not 3.
    stream = CitationStream(dict(SOURCES))
    _, notes = stream.feed("😀 【0:0†a】")
    assert (notes[0]["start_index"], notes[0]["end_index"]) == (2, 9)


def test_empty_name_is_a_marker() -> None:
    assert find_citations("【0:1†】", SOURCES) == [cite("【0:1†】", 0, "file-b")]


@pytest.mark.parametrize(
    ("name_length", "annotated"), [(0, True), (1, True), (120, True), (121, False)]
)
def test_marker_name_is_at_most_120_characters(name_length: int, annotated: bool) -> None:
    marker = f"【0:0†{'n' * name_length}】"
    stream = CitationStream(dict(SOURCES))
    released, notes = stream_all(stream, [marker[:3], marker[3:]])[1]
    assert released == marker
    assert notes == ([cite(marker, 0, "file-a", 0)] if annotated else [])


@pytest.mark.parametrize(
    "text",
    [
        "【0:0†a\nb】",  # a newline ends any marker
        "【0:0-a】",  # no dagger
        "【x:0†a】",  # not a number
        "【0†a】",  # one number only
        "[0:0†a]",  # ASCII brackets
        "【note】",
    ],
)
def test_what_is_not_a_marker_is_released_unannotated(text: str) -> None:
    stream = CitationStream(dict(SOURCES))
    released, notes = joined(stream_all(stream, list(text)))
    assert released == text
    assert notes == []
    assert stream.found == []


def test_unknown_source_is_text_and_takes_no_index() -> None:
    stream = CitationStream(dict(SOURCES))
    text = "【5:5†gone】 then 【0:1†b】"
    released, notes = stream.feed(text)
    assert released == text
    # The unknown marker uses no index: the known one after it is still index 0.
    assert notes == [cite("【0:1†b】", 16, "file-b", 0)]


def test_without_sources_nothing_is_held_or_annotated() -> None:
    stream = CitationStream({})
    assert stream.feed("a【0:") == ("a【0:", [])
    assert stream.feed("0†a】") == ("0†a】", [])
    assert stream.pending == ""
    assert stream.found == []


# --- holding back while a marker may be opening


def test_text_from_an_opening_bracket_is_held_until_it_closes() -> None:
    stream = CitationStream(dict(SOURCES))
    assert stream.feed("See 【0:") == ("See ", [])
    assert stream.pending == "【0:"
    assert stream.sent == 4
    assert stream.feed("1†b") == ("", [])
    assert stream.pending == "【0:1†b"
    assert stream.feed("】 ok") == ("【0:1†b】 ok", [cite("【0:1†b】", 4, "file-b", 0)])
    assert stream.pending == ""
    assert stream.sent == 14


def test_an_unknown_marker_is_held_too() -> None:
    # Holding depends on there being sources, not on which one the marker will name.
    stream = CitationStream(dict(SOURCES))
    assert stream.feed("x【9:9†") == ("x", [])
    assert stream.feed("y】") == ("【9:9†y】", [])


def test_a_closed_marker_goes_out_and_a_new_opening_is_held() -> None:
    stream = CitationStream(dict(SOURCES))
    released, notes = stream.feed("【0:0†a】 and 【0:")
    assert released == "【0:0†a】 and "
    assert notes == [cite("【0:0†a】", 0, "file-a", 0)]
    assert stream.pending == "【0:"
    assert stream.feed("1†b】") == ("【0:1†b】", [cite("【0:1†b】", 12, "file-b", 1)])


def test_an_open_bracket_is_held_for_at_most_127_characters() -> None:
    stream = CitationStream(dict(SOURCES))
    assert stream.feed("ab【" + "x" * 125) == ("ab", [])
    assert len(stream.pending) == 126
    assert stream.feed("x") == ("", [])  # 127 held: still a possible marker
    released, notes = stream.feed("x")  # 128: longer than any marker, so let it go
    assert released == "【" + "x" * 127
    assert notes == []
    assert stream.pending == ""
    assert stream.sent == 130


def test_the_longest_marker_is_held_whole() -> None:
    # 126 characters: the hold limit never cuts a marker the pattern accepts.
    marker = f"【0:0†{'n' * 120}】"
    stream = CitationStream(dict(SOURCES))
    outputs = [stream.feed(c) for c in marker]
    assert all(out == ("", []) for out in outputs[:-1])
    assert outputs[-1] == (marker, [cite(marker, 0, "file-a", 0)])


def test_markers_fed_one_character_at_a_time() -> None:
    stream = CitationStream(dict(SOURCES))
    text = "Purr【0:0†cats】, tax【1:0†tax.md】 and 【7:7†none】 end【0:1†b】"
    out = stream_all(stream, list(text))
    released, notes = joined(out)
    assert released == text
    assert notes == [
        cite("【0:0†cats】", 4, "file-a", 0),
        cite("【1:0†tax.md】", 19, "file-c", 1),
        cite("【0:1†b】", 50, "file-b", 2),
    ]
    assert [text.index(n["text"]) for n in notes] == [4, 19, 50]
    # Each annotation goes out once, in the delta that carries its whole marker.
    carrying = [(t, found) for t, found in out if found]
    assert [t for t, _ in carrying] == ["【0:0†cats】", "【1:0†tax.md】", "【0:1†b】"]
    # No delta ever ends inside a marker: a piece holding a 【 ends with its 】.
    assert "【7:7†none】" in [t for t, _ in out]
    assert all("【" not in t or t.endswith("】") for t, _ in out)


def test_released_plus_pending_is_always_what_was_fed() -> None:
    stream = CitationStream(dict(SOURCES), files=dict(FILES))
    text = "A【0:0†a】 sandbox:/mnt/data/out.csv【0:1†b】s"
    released = ""
    for i, char in enumerate(text):
        out, _ = stream.feed(char)
        released += out
        assert released + stream.pending == text[: i + 1]
        assert stream.sent == len(released)
    assert stream.pending == "s"  # could still start "sandbox:/mnt/data/"
    assert stream.flush() == ("s", [])


SPLIT_TEXT = "Hi 【0:0†a】 see sandbox:/mnt/data/out.csv, then 【1:0†c】."
SPLIT_NOTES = [
    cite("【0:0†a】", 3, "file-a", 0),
    path("sandbox:/mnt/data/out.csv", 15, "file-out", 1),
    cite("【1:0†c】", 47, "file-c", 2),
]


@pytest.mark.parametrize("cut", range(len(SPLIT_TEXT) + 1))
def test_every_two_piece_split_gives_the_same_annotations(cut: int) -> None:
    stream = CitationStream(dict(SOURCES), files=dict(FILES))
    out = stream_all(stream, [SPLIT_TEXT[:cut], SPLIT_TEXT[cut:]])
    assert joined(out) == (SPLIT_TEXT, SPLIT_NOTES)


def test_uneven_pieces_give_the_same_annotations_as_one() -> None:
    sizes = [1, 2, 3, 5, 8, 13, 21]
    pieces: list[str] = []
    at = 0
    for size in sizes * 3:
        pieces.append(SPLIT_TEXT[at : at + size])
        at += size
    assert "".join(pieces) == SPLIT_TEXT
    stream = CitationStream(dict(SOURCES), files=dict(FILES))
    assert joined(stream_all(stream, pieces)) == (SPLIT_TEXT, SPLIT_NOTES)


def test_a_second_opening_releases_the_first_unclosed_one() -> None:
    # Only the last 【 is held: an earlier one still open is given up, unannotated.
    stream = CitationStream(dict(SOURCES))
    released, notes = joined(stream_all(stream, list("【0:0†a 【0:1†b】")))
    assert released == "【0:0†a 【0:1†b】"
    assert notes == [cite("【0:1†b】", 7, "file-b", 0)]


# --- flush, and what is left after a cut


def test_flush_releases_an_unclosed_bracket_without_annotation() -> None:
    stream = CitationStream(dict(SOURCES))
    assert stream.feed("end 【0:0†a") == ("end ", [])
    assert stream.flush() == ("【0:0†a", [])
    assert stream.pending == ""
    assert stream.sent == 10
    assert stream.flush() == ("", [])


def test_flush_annotates_a_complete_link_at_the_end() -> None:
    stream = CitationStream(dict(SOURCES), files=dict(FILES))
    released, notes = stream.feed("【0:0†a】 get sandbox:/mnt/data/out.csv")
    assert released == "【0:0†a】 get "
    assert notes == [cite("【0:0†a】", 0, "file-a", 0)]
    assert stream.pending == "sandbox:/mnt/data/out.csv"
    assert stream.flush() == (
        "sandbox:/mnt/data/out.csv",
        [path("sandbox:/mnt/data/out.csv", 12, "file-out", 1)],
    )


def test_found_keeps_every_annotation_without_its_index() -> None:
    stream = CitationStream(dict(SOURCES), files=dict(FILES))
    stream_all(stream, list("【0:1†b】 (sandbox:/mnt/data/plot.png) 【0:0†a】"))
    assert stream.found == [
        cite("【0:1†b】", 0, "file-b"),
        path("sandbox:/mnt/data/plot.png", 9, "file-plot"),
        cite("【0:0†a】", 37, "file-a"),
    ]
    assert stream.count == 3


# --- sandbox links


def test_link_is_held_while_it_may_go_on() -> None:
    stream = CitationStream({}, files=dict(FILES))
    assert stream.feed("Get sandbox:/mnt/data/out") == ("Get ", [])
    assert stream.feed(".csv") == ("", [])
    assert stream.pending == "sandbox:/mnt/data/out.csv"
    released, notes = stream.feed(" now")
    assert released == "sandbox:/mnt/data/out.csv now"
    assert notes == [path("sandbox:/mnt/data/out.csv", 4, "file-out", 0)]


@pytest.mark.parametrize(
    ("fed", "released"),
    [
        ("see sandbox:/mnt/data", "see "),  # the prefix without its last slash
        ("see sandbox:/mn", "see "),
        ("see sand", "see "),
        ("cats", "cat"),  # a lone "s" may start the prefix
        ("cat", "cat"),
        ("see sandbox:/mnt/data/", "see "),  # the whole prefix, no name yet
        ("see sandbox:/mnt/data/zzz", "see "),  # held whatever name it will have
        ("see sandbox:/mnt/data/a b", "see sandbox:/mnt/data/a b"),
        ("(sandbox:/mnt/data/out.csv)", "(sandbox:/mnt/data/out.csv)"),
    ],
)
def test_link_hold_points(fed: str, released: str) -> None:
    stream = CitationStream({}, files=dict(FILES))
    assert stream.feed(fed)[0] == released
    assert stream.pending == fed[len(released) :]


def test_a_link_is_held_for_at_most_511_characters() -> None:
    stream = CitationStream({}, files=dict(FILES))
    prefix = "sandbox:/mnt/data/"
    assert stream.feed(prefix + "a" * 493) == ("", [])
    assert len(stream.pending) == 511
    released, notes = stream.feed("a")
    assert released == prefix + "a" * 494
    assert notes == []


def test_without_files_links_are_not_held() -> None:
    stream = CitationStream(dict(SOURCES))
    assert stream.feed("x sandbox:/mnt/data/out") == ("x sandbox:/mnt/data/out", [])


def test_marker_and_link_holds_take_the_earlier_point() -> None:
    # A link still going on inside an open bracket: the bracket's hold point comes first.
    stream = CitationStream(dict(SOURCES), files=dict(FILES))
    assert stream.feed("x 【0:0†see sandbox:/mnt/data/out") == ("x ", [])
    assert stream.pending == "【0:0†see sandbox:/mnt/data/out"
    released, notes = stream.feed(".csv】!")
    assert released == "【0:0†see sandbox:/mnt/data/out.csv】!"
    # Both annotations, ordered by where they start (the link sits inside the marker).
    assert notes == [
        cite("【0:0†see sandbox:/mnt/data/out.csv】", 2, "file-a", 0),
        path("sandbox:/mnt/data/out.csv", 11, "file-out", 1),
    ]


def test_a_finished_link_goes_out_while_a_later_marker_is_held() -> None:
    stream = CitationStream(dict(SOURCES), files=dict(FILES))
    released, notes = stream.feed("a sandbox:/mnt/data/out.csv 【0:")
    assert released == "a sandbox:/mnt/data/out.csv "
    assert notes == [path("sandbox:/mnt/data/out.csv", 2, "file-out", 0)]
    assert stream.feed("0†a】") == ("【0:0†a】", [cite("【0:0†a】", 28, "file-a", 1)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sandbox:/mnt/data/out.csv", [path("sandbox:/mnt/data/out.csv", 0, "file-out")]),
        # Sentence punctuation after the link is not part of the name...
        ("at sandbox:/mnt/data/out.csv.", [path("sandbox:/mnt/data/out.csv", 3, "file-out")]),
        ("sandbox:/mnt/data/out.csv?!", [path("sandbox:/mnt/data/out.csv", 0, "file-out")]),
        # ...unless the name itself ends that way: the whole link is tried first.
        ("sandbox:/mnt/data/v1.", [path("sandbox:/mnt/data/v1.", 0, "file-dot")]),
        ("[p](sandbox:/mnt/data/plot.png)", [path("sandbox:/mnt/data/plot.png", 4, "file-plot")]),
        ('"sandbox:/mnt/data/out.csv"', [path("sandbox:/mnt/data/out.csv", 1, "file-out")]),
        ("sandbox:/mnt/data/other.csv", []),
        ("sandbox:/mnt/data/", []),
        ("sandbox:/tmp/out.csv", []),
        (
            "sandbox:/mnt/data/out.csv and sandbox:/mnt/data/plot.png",
            [
                path("sandbox:/mnt/data/out.csv", 0, "file-out"),
                path("sandbox:/mnt/data/plot.png", 30, "file-plot"),
            ],
        ),
    ],
)
def test_find_file_paths(text: str, expected: list[Annotation]) -> None:
    assert find_file_paths(text, FILES) == expected


def test_find_file_paths_adds_the_offset() -> None:
    assert find_file_paths("sandbox:/mnt/data/out.csv", FILES, offset=40) == [
        path("sandbox:/mnt/data/out.csv", 40, "file-out")
    ]


def test_find_citations_adds_the_offset_and_skips_unknown() -> None:
    text = "【0:0†a】【3:3†z】【1:0†c】"
    assert find_citations(text, SOURCES, offset=100) == [
        cite("【0:0†a】", 100, "file-a"),
        cite("【1:0†c】", 114, "file-c"),
    ]
    assert find_citations(text, {}) == []


def test_nested_subdirectory_link_names_the_relative_path() -> None:
    files = {"a/b.png": "file-ab"}
    assert find_file_paths("sandbox:/mnt/data/a/b.png", files) == [
        path("sandbox:/mnt/data/a/b.png", 0, "file-ab")
    ]


# --- MessageSources


def test_message_sources_start_empty_and_unshared() -> None:
    first, second = MessageSources(), MessageSources()
    assert (first.sources, first.files, first.images) == ({}, {}, [])
    first.sources[(0, 0)] = "file-a"
    first.files["x"] = "file-x"
    first.images.append("file-i")
    assert (second.sources, second.files, second.images) == ({}, {}, [])
