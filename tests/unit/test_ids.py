"""Object ids: OpenAI's prefixes, a 24-character body, and a sort key that orders creation."""

from __future__ import annotations

import threading
import time
import types

import pytest

from assistd import ids

EXPECTED_PREFIXES = {
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


def test_prefixes_are_openais() -> None:
    assert ids.PREFIXES == EXPECTED_PREFIXES


@pytest.mark.parametrize(("kind", "prefix"), sorted(EXPECTED_PREFIXES.items()))
def test_new_id_shape(kind: str, prefix: str) -> None:
    object_id = ids.new_id(kind)
    assert object_id.startswith(prefix)
    body = object_id[len(prefix) :]
    assert len(body) == 24
    assert all(c in ids.ALPHABET for c in body)
    assert object_id.isascii()


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        ids.new_id("banana")


def test_alphabet_is_in_ascii_order() -> None:
    # So ids of one kind also sort as strings in creation order.
    assert list(ids.ALPHABET) == sorted(ids.ALPHABET)
    assert len(ids.ALPHABET) == len(set(ids.ALPHABET)) == 62


def test_ids_are_unique_and_increasing() -> None:
    made = [ids.new_id("assistant") for _ in range(2000)]
    assert len(set(made)) == len(made)
    keys = [ids.sort_key_of(i, "assistant") for i in made]
    assert all(k is not None for k in keys)
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)  # strictly increasing
    assert made == sorted(made)  # string order is creation order too


def test_sort_keys_strictly_increase_across_kinds() -> None:
    a = ids.new_id("assistant")
    t = ids.new_id("thread")
    m = ids.new_id("message")
    f = ids.new_id("file")
    keys = [
        ids.sort_key_of(a, "assistant"),
        ids.sort_key_of(t, "thread"),
        ids.sort_key_of(m, "message"),
        ids.sort_key_of(f, "file"),
    ]
    assert None not in keys
    assert keys == sorted(keys)
    assert len(set(keys)) == 4


def test_sort_key_is_anchored_to_wall_clock_milliseconds() -> None:
    before_ms = time.time_ns() // 1_000_000
    key = ids.next_sort_key()
    after_ms = time.time_ns() // 1_000_000
    # A key may run ahead of the clock by its counter, never behind it.
    assert before_ms <= key >> 16
    assert key >> 16 <= after_ms + 1
    assert key < 62**ids.KEY_CHARS


def test_sort_keys_keep_increasing_when_the_clock_stalls_or_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A private clock and counter; both are put back after the test.
    now_ns = time.time_ns()
    monkeypatch.setattr(ids, "time", types.SimpleNamespace(time_ns=lambda: now_ns))
    monkeypatch.setattr(ids, "_last_key", 0)
    first = ids.next_sort_key()
    assert first == (now_ns // 1_000_000) << 16
    same_ms = [ids.next_sort_key() for _ in range(5)]
    assert same_ms == [first + i for i in range(1, 6)]
    now_ns -= 5 * 10**9  # the clock jumps five seconds back
    later = ids.next_sort_key()
    assert later == first + 6


def test_sort_keys_are_unique_across_threads() -> None:
    results: list[list[int]] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [ids.next_sort_key() for _ in range(500)]
        with lock:
            results.append(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [k for chunk in results for k in chunk]
    assert len(flat) == 4000
    assert len(set(flat)) == 4000
    for chunk in results:
        assert chunk == sorted(chunk)


@pytest.mark.parametrize("kind", sorted(EXPECTED_PREFIXES))
def test_sort_key_round_trip(kind: str) -> None:
    for key in (0, 1, 61, 62, 123_456_789, (time.time_ns() // 1_000_000) << 16, 62**10 - 1):
        object_id = ids.PREFIXES[kind] + ids._encode(key, ids.KEY_CHARS) + "a" * 14
        assert ids.sort_key_of(object_id, kind) == key


def test_encode_is_fixed_width_base62() -> None:
    assert ids._encode(0, 10) == "0000000000"
    assert ids._encode(61, 10) == "000000000z"
    assert ids._encode(62, 10) == "0000000010"
    assert ids._encode(62**10 - 1, 10) == "z" * 10


def test_sort_key_of_new_id_matches_its_position() -> None:
    first = ids.new_id("thread")
    second = ids.new_id("thread")
    k1 = ids.sort_key_of(first, "thread")
    k2 = ids.sort_key_of(second, "thread")
    assert k1 is not None
    assert k2 is not None
    assert k2 > k1
    assert first[len("thread_") : len("thread_") + 10] == ids._encode(k1, 10)


GOOD_BODY = "0000000001" + "abcdefghijklmn"


@pytest.mark.parametrize(
    ("object_id", "kind"),
    [
        ("", "assistant"),
        ("asst_", "assistant"),
        ("garbage", "assistant"),
        ("asst_" + GOOD_BODY[:-1], "assistant"),  # 23 characters
        ("asst_" + GOOD_BODY + "x", "assistant"),  # 25 characters
        ("asst-" + GOOD_BODY, "assistant"),  # wrong separator
        ("ASST_" + GOOD_BODY, "assistant"),  # prefixes are case-sensitive
        ("thread_" + GOOD_BODY, "assistant"),  # another kind's id
        ("asst_" + GOOD_BODY, "thread"),
        ("file_" + GOOD_BODY, "file"),  # files use a dash
        ("asst_" + "000000000!" + "abcdefghijklmn", "assistant"),  # bad key character
        ("asst_" + "0000000001" + "abcdefghijklm-", "assistant"),  # bad random character
        ("asst_" + "0000000001" + "abcdefghijklm\u00e9", "assistant"),  # non-ASCII
        ("x_asst_" + GOOD_BODY, "assistant"),
    ],
)
def test_sort_key_of_rejects_malformed_ids(object_id: str, kind: str) -> None:
    assert ids.sort_key_of(object_id, kind) is None


def test_sort_key_of_accepts_a_well_formed_id() -> None:
    assert ids.sort_key_of("asst_" + GOOD_BODY, "assistant") == 1
    assert ids.sort_key_of("file-" + GOOD_BODY, "file") == 1


def test_key_of_own_is_the_key_a_fresh_id_carries() -> None:
    object_id = ids.new_id("thread")
    assert ids.key_of_own(object_id, "thread") == ids.sort_key_of(object_id, "thread")
    # An id of another kind, or not ours, has no key to give: that is a bug, not input.
    with pytest.raises(ValueError, match="not an id of a run"):
        ids.key_of_own(object_id, "run")
