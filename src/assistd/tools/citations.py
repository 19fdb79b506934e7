"""Citation markers and sandbox links in the model's text → annotations.

file_search shows the model each result under a marker ``【<call>:<result>†<name>】`` and the
model copies markers into its answer (OpenAI's v2 convention; it often writes ``†source``).
A marker whose numbers name a result of this run becomes an annotation whose
``start_index``/``end_index`` are the marker's character offsets in the message text. While
streaming, text from an opening ``【`` is held back until the marker closes, so each
annotation goes out once, in the delta that carries its whole marker.

code_interpreter's files are linked as ``sandbox:/mnt/data/<name>``; a link naming a file
the run's code wrote becomes a ``file_path`` annotation over the link. A link is held back
the same way until a character that cannot be part of it ends it (or the text ends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"【(\d+):(\d+)†[^】\n]{0,120}】")
# A bracket still open after this many characters is not a marker: stop holding it back.
_MAX_MARKER = 128
LINK_PREFIX = "sandbox:/mnt/data/"
# A link runs to the first space, quote or closing bracket (Markdown puts it in "(...)").
LINK = re.compile(re.escape(LINK_PREFIX) + r"[^\s()\[\]<>{}\"'`【】]+")
_MAX_LINK = 512
# Sentence punctuation right after a link is not part of the file's name.
_TRAILING = ".,;:!?"

Sources = dict[tuple[int, int], str]


@dataclass
class MessageSources:
    """What a run's built-in calls so far give its next message."""

    # (call ordinal, result index) → file id, for file_citation annotations.
    sources: Sources = field(default_factory=dict)
    # Files the run's code wrote, by name under /mnt/data (for file_path annotations).
    files: dict[str, str] = field(default_factory=dict)
    # Images the run's code displayed, in order.
    images: list[str] = field(default_factory=list)


def find_citations(text: str, sources: Sources, offset: int = 0) -> list[dict[str, Any]]:
    """Annotations for the complete markers in ``text`` (which starts at ``offset``)."""
    found: list[dict[str, Any]] = []
    for match in MARKER.finditer(text):
        file_id = sources.get((int(match.group(1)), int(match.group(2))))
        if file_id is None:
            continue
        found.append(
            {
                "type": "file_citation",
                "text": match.group(0),
                "start_index": offset + match.start(),
                "end_index": offset + match.end(),
                "file_citation": {"file_id": file_id},
            }
        )
    return found


def find_file_paths(text: str, files: dict[str, str], offset: int = 0) -> list[dict[str, Any]]:
    """``file_path`` annotations for the links in ``text`` that name one of ``files``
    (name under /mnt/data → file id)."""
    found: list[dict[str, Any]] = []
    for match in LINK.finditer(text):
        link = match.group(0)
        name = link[len(LINK_PREFIX) :]
        file_id = files.get(name)
        if file_id is None:
            link = link.rstrip(_TRAILING)
            file_id = files.get(link[len(LINK_PREFIX) :])
        if file_id is None:
            continue
        found.append(
            {
                "type": "file_path",
                "text": link,
                "start_index": offset + match.start(),
                "end_index": offset + match.start() + len(link),
                "file_path": {"file_id": file_id},
            }
        )
    return found


def _link_hold(text: str) -> int:
    """Where an unfinished sandbox link starts in ``text`` (its length when there is none)."""
    start = text.rfind(LINK_PREFIX)
    if start != -1:
        match = LINK.match(text, start)
        reaches_end = match is None or match.end() == len(text)
        if reaches_end and len(text) - start < _MAX_LINK:
            return start
    # The text may end inside the prefix itself ("... sandbox:/mn").
    for size in range(min(len(LINK_PREFIX) - 1, len(text)), 0, -1):
        if text.endswith(LINK_PREFIX[:size]):
            return len(text) - size
    return len(text)


@dataclass
class CitationStream:
    """Splits streamed text into deltas that never cut a marker in two."""

    sources: Sources
    # Files the run's code wrote, by name under /mnt/data (for file_path annotations).
    files: dict[str, str] = field(default_factory=dict)
    sent: int = 0
    count: int = 0
    pending: str = ""
    found: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, piece: str) -> tuple[str, list[dict[str, Any]]]:
        """Text that can go out now and the annotations (with ``index``) it carries."""
        self.pending += piece
        hold = len(self.pending)
        if self.sources:
            opening = self.pending.rfind("【")
            unclosed = opening != -1 and "】" not in self.pending[opening:]
            if unclosed and len(self.pending) - opening < _MAX_MARKER:
                hold = opening
        if self.files:
            hold = min(hold, _link_hold(self.pending))
        return self._release(hold)

    def flush(self) -> tuple[str, list[dict[str, Any]]]:
        return self._release(len(self.pending))

    def _release(self, upto: int) -> tuple[str, list[dict[str, Any]]]:
        text, self.pending = self.pending[:upto], self.pending[upto:]
        found = find_citations(text, self.sources, self.sent) if self.sources else []
        if self.files:
            found += find_file_paths(text, self.files, self.sent)
            found.sort(key=lambda annotation: int(annotation["start_index"]))
        self.sent += len(text)
        self.found.extend(found)
        indexed = []
        for annotation in found:
            indexed.append({**annotation, "index": self.count})
            self.count += 1
        return text, indexed
