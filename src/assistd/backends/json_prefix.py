"""Decoding a JSON string while it is still being generated.

Models write tool arguments and constrained replies as JSON, token by token; what is
inside a string can be shown as it arrives (a message's text, the code_interpreter's
code) without waiting for the closing quote, as long as no escape is cut in two.
"""

from __future__ import annotations

import json


def decode_string_prefix(raw: str) -> str:
    """Decode the complete part of a JSON string body (no opening quote, maybe unfinished)."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            break
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        size = 6 if raw[i + 1 : i + 2] == "u" else 2
        # A high surrogate needs its low half before it can be decoded.
        if size == 6 and raw[i + 2 : i + 3].lower() == "d" and raw[i + 3 : i + 4] in "89abAB":
            size = 12
        escape = raw[i : i + size]
        if len(escape) < size:
            break
        try:
            out.append(json.loads(f'"{escape}"'))
        except ValueError:
            break
        i += size
    return "".join(out)
