"""Citations of an assistant's chat answer: numbered markers and ``url_citation`` notes.

In a run, file_search markers stay in the text as the model wrote them
(``【0:1†notes.txt】``) and become ``file_citation`` annotations. A Chat Completions client
has no thread to look them up in, so here each cited file gets a number, in the order of
first citation, and the marker reads ``[1]``. The annotations use the one shape the Chat
Completions schema has, ``url_citation`` (so strict clients accept them), with the file's
content URL and name; a ``file_citation`` / ``file_path`` / ``image_file`` member (which
the SDK keeps as an extra field) names the file id:

    {"type": "url_citation",
     "url_citation": {"url": ".../v1/files/file-1/content", "title": "notes.txt",
                      "start_index": 10, "end_index": 13},
     "file_citation": {"file_id": "file-1"}}

Links the model wrote to files its code made (``sandbox:/mnt/data/x.csv``) are annotated
over the link (``file_path``). A file the code wrote that the text never links, and each
image the code displayed, is annotated at the end of the text with an empty span, so that
every output file is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistd.tools.citations import CitationStream, MessageSources

Annotation = dict[str, Any]


@dataclass
class ChatCitations:
    """Rewrites streamed text as it is released and annotates it (offsets in the result)."""

    files_url: str  # ".../v1/files", the prefix of each file's content URL
    stream: CitationStream = field(default_factory=lambda: CitationStream({}))
    numbers: dict[str, int] = field(default_factory=dict)  # cited file id → its number
    names: dict[str, str] = field(default_factory=dict)  # file id → name (title)
    images: list[str] = field(default_factory=list)
    annotated: set[str] = field(default_factory=set)
    sent: int = 0  # characters released so far, after rewriting

    def update(self, sources: MessageSources, names: dict[str, str]) -> None:
        """What the built-in calls so far give the answer (after each round of calls)."""
        self.stream.sources = sources.sources
        self.stream.files = sources.files
        self.images = sources.images
        self.names |= names
        self.names |= {file_id: name for name, file_id in sources.files.items()}

    def feed(self, piece: str) -> tuple[str, list[Annotation]]:
        """Text that can go out now, rewritten, and its annotations."""
        return self._rewrite(*self.stream.feed(piece))

    def flush(self) -> tuple[str, list[Annotation]]:
        """The rest of the text, then notes for the output files it did not link."""
        text, notes = self._rewrite(*self.stream.flush())
        for name, file_id in self.stream.files.items():
            if file_id not in self.annotated:
                notes.append(self._note("file_path", file_id, self.sent, self.sent, name))
        for file_id in self.images:
            if file_id not in self.annotated:
                notes.append(self._note("image_file", file_id, self.sent, self.sent))
        return text, notes

    def _rewrite(self, text: str, found: list[Annotation]) -> tuple[str, list[Annotation]]:
        # ``found`` carries offsets in the model's text; the released piece starts here.
        base = self.stream.sent - len(text)
        parts: list[str] = []
        notes: list[Annotation] = []
        at = 0
        length = 0
        for annotation in found:
            start = int(annotation["start_index"]) - base
            end = int(annotation["end_index"]) - base
            parts.append(text[at:start])
            length += start - at
            kind = str(annotation["type"])
            file_id = str(annotation[kind]["file_id"])
            shown = f"[{self._number(file_id)}]" if kind == "file_citation" else text[start:end]
            parts.append(shown)
            begin = self.sent + length
            notes.append(self._note(kind, file_id, begin, begin + len(shown)))
            length += len(shown)
            at = end
        parts.append(text[at:])
        result = "".join(parts)
        self.sent += len(result)
        return result, notes

    def _number(self, file_id: str) -> int:
        return self.numbers.setdefault(file_id, len(self.numbers) + 1)

    def _note(
        self, kind: str, file_id: str, start: int, end: int, title: str | None = None
    ) -> Annotation:
        self.annotated.add(file_id)
        return {
            "type": "url_citation",
            "url_citation": {
                "url": f"{self.files_url}/{file_id}/content",
                "title": title or self.names.get(file_id, file_id),
                "start_index": start,
                "end_index": end,
            },
            kind: {"file_id": file_id},
        }
