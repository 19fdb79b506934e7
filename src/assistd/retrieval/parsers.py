"""Plain text out of the file types OpenAI's file search accepts.

``parse_document`` is pure and blocking (PDF parsing can take seconds): callers run it in a
thread. Every failure is a ``ParseError`` whose ``code`` is one of the vector store file
``last_error`` codes and whose message is shown to the user as it is, so it says what is
wrong with *their* file, never how our code failed.

The extension picks the parser, but uploads often arrive named ``blob`` or with a wrong
extension, so the bytes are sniffed first: a ``%PDF`` header or a zip holding ``word/`` or
``ppt/`` wins over the name. Text is decoded strictly (UTF-8, BOM-marked UTF-16/32, then
Windows-1252 or Latin-1 only when the bytes look like text): indexing binary junk as
"text" would fill a vector store with noise that matches nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Literal

ParseErrorCode = Literal["server_error", "unsupported_file", "invalid_file"]
Kind = Literal["text", "markdown", "html", "json", "csv", "code", "pdf", "docx", "pptx"]

CHARS_PER_PAGE = 3000
# A .docx or .pptx whose parts inflate past this is a zip bomb, not a document. The parsers
# hold every part in memory at once, so this bounds what one ingestion can take.
MAX_UNZIPPED_BYTES = 256 * 1024 * 1024
_OFFICE_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_READ_BLOCK = 1024 * 1024

_EXTENSIONS: dict[str, Kind] = {
    **dict.fromkeys((".txt", ".text", ".log", ".rst", ".tex"), "text"),
    **dict.fromkeys((".md", ".markdown"), "markdown"),
    **dict.fromkeys((".html", ".htm", ".xhtml"), "html"),
    **dict.fromkeys((".json", ".jsonl", ".ndjson"), "json"),
    **dict.fromkeys((".csv", ".tsv"), "csv"),
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    **dict.fromkeys(
        (
            ".py", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".java", ".c", ".cpp", ".cc",
            ".cxx", ".h", ".hpp", ".hh", ".cs", ".go", ".rb", ".php", ".sh", ".bash", ".zsh",
            ".ps1", ".bat", ".css", ".scss", ".less", ".rs", ".kt", ".kts", ".swift", ".scala",
            ".sql", ".r", ".lua", ".pl", ".m", ".dart", ".vue", ".svelte", ".yaml", ".yml",
            ".toml", ".ini", ".cfg", ".conf", ".env", ".xml", ".graphql", ".proto",
            ".dockerfile", ".makefile", ".gradle", ".ipynb",
        ),
        "code",
    ),
}  # fmt: skip
_MIMES: dict[str, Kind] = {
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/html": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/json": "json",
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/xml": "code",
    "application/x-sh": "code",
    "application/javascript": "code",
    "application/typescript": "code",
}
_LEGACY_OFFICE = {".doc": ".docx", ".ppt": ".pptx", ".xls": ".csv"}
_LABELS = {"pdf": "PDF", "docx": "DOCX", "pptx": "PPTX"}


class ParseError(Exception):
    """A file that cannot be indexed, with the ``last_error`` a vector store file shows."""

    def __init__(self, message: str, code: ParseErrorCode = "invalid_file") -> None:
        super().__init__(message)
        self.message = message
        self.code: ParseErrorCode = code


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A document's text; ``pages`` is real for PDF and PPTX and estimated otherwise."""

    text: str
    pages: int
    kind: Kind


def parse_document(data: bytes, filename: str, mime: str | None = None) -> ParsedDocument:
    """Extract the text of an uploaded file, or raise ``ParseError`` saying why not."""
    extension = _extension(filename)
    kind = _sniff(data) or _EXTENSIONS.get(extension)
    if kind is None and extension in _LEGACY_OFFICE:
        raise ParseError(
            f"Unsupported file type '{extension}' for file search: save it as "
            f"'{_LEGACY_OFFICE[extension]}' and upload it again.",
            "unsupported_file",
        )
    if kind is None and b"%PDF-" in data[:1024]:
        kind = "pdf"  # the PDF format allows a little junk before its header
    if kind is None:
        kind = _from_mime(mime)
    if kind is None and not extension:
        kind = "text"  # no name to go by: accept it if it decodes as text
    if kind is None:
        raise ParseError(
            f"Unsupported file type '{extension}' for file search.", "unsupported_file"
        )
    if not data:
        raise ParseError("The file is empty.", "invalid_file")

    pages: int | None = None
    if kind == "pdf":
        text, pages = _pdf(data)
    elif kind == "docx":
        text = _docx(data)
    elif kind == "pptx":
        text, pages = _pptx(data)
    else:
        text = _TEXT_PARSERS[kind](decode_text(data))
    text = _tidy(text)
    if not text.strip():
        hint = " (a scanned PDF needs OCR first)" if kind == "pdf" else ""
        raise ParseError(f"The file contains no text{hint}.", "invalid_file")
    if pages is None:
        pages = max(1, math.ceil(len(text) / CHARS_PER_PAGE))
    return ParsedDocument(text=text, pages=max(1, pages), kind=kind)


def _extension(filename: str) -> str:
    base = os.path.basename(filename.replace("\\", "/")).lower()
    if base in ("dockerfile", "makefile"):
        return f".{base}"
    _, extension = os.path.splitext(base)
    return extension


def _from_mime(mime: str | None) -> Kind | None:
    essence = (mime or "").split(";", 1)[0].strip().lower()
    if essence in _MIMES:
        return _MIMES[essence]
    return "text" if essence.startswith("text/") else None


def _sniff(data: bytes) -> Kind | None:
    """The container format the bytes really are, whatever the name says."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if not data.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    if any(name.startswith("word/") for name in names):
        return "docx"
    if any(name.startswith("ppt/") for name in names):
        return "pptx"
    return None


# --- text ---------------------------------------------------------------------------------

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# C0 controls other than tab, newline, form feed and carriage return, plus DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# Coloured logs carry some escapes; random bytes decode to about 11% controls.
_MAX_CONTROL_RATIO = 0.05


def decode_text(data: bytes) -> str:
    """Bytes to text, or ``ParseError`` when they are not text in any encoding we trust."""
    text: str | None = None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                raise ParseError(
                    "The file is not valid text: its byte order mark does not match its contents.",
                    "invalid_file",
                ) from None
            break
    if text is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if b"\x00" in data:
                raise ParseError("The file is binary, not text.", "invalid_file") from None
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    if "\x00" in text or len(_CONTROL.findall(text)) > _MAX_CONTROL_RATIO * len(text):
        raise ParseError("The file is binary, not text.", "invalid_file")
    return text


def _plain(text: str) -> str:
    return text


def _json(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return text  # JSON Lines, or JSON with a typo: still worth indexing as it is
    return json.dumps(value, indent=2, ensure_ascii=False)


def _csv(text: str) -> str:
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error:
        return text
    return "\n".join(" | ".join(cell.strip() for cell in row) for row in rows if any(row))


_SKIPPED = {"script", "style", "noscript", "template", "svg"}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "div", "dl",
    "dt", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
    "thead", "tfoot", "title", "tr", "ul",
}  # fmt: skip


class _HTMLText(HTMLParser):
    """Visible text of a page, with a line break wherever a block element starts or ends."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping.append(tag)
        if tag == "pre":
            self.pre += 1
        if tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def _html(text: str) -> str:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    lines = (
        line.strip(" \t|") if line.strip() else "" for line in "".join(parser.parts).split("\n")
    )
    return "\n".join(lines)


_TEXT_PARSERS = {
    "text": _plain,
    "markdown": _plain,
    "code": _plain,
    "html": _html,
    "json": _json,
    "csv": _csv,
}


def _tidy(text: str) -> str:
    """One newline style, no NULs, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


# --- office documents and PDF -------------------------------------------------------------


def _corrupt(kind: str) -> ParseError:
    return ParseError(f"Could not parse {_LABELS[kind]}: the file is corrupt.", "invalid_file")


def _pdf(data: bytes) -> tuple[str, int]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    encrypted = ParseError(
        "Could not parse PDF: the file is encrypted. Remove the password and upload it again.",
        "invalid_file",
    )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise encrypted  # owner-only passwords open with an empty user password
        pages = list(reader.pages)
    except ParseError:
        raise
    except (FileNotDecryptedError, DependencyError):
        raise encrypted from None
    except Exception:  # pypdf raises many types on damaged files
        raise _corrupt("pdf") from None
    texts: list[str] = []
    for page in pages:
        try:
            texts.append(page.extract_text() or "")
        except Exception:  # one damaged page should not lose the rest of the document
            continue
    return "\n\n".join(texts), len(pages)


def _check_zip(data: bytes, kind: str) -> None:
    """Refuse a zip bomb before python-docx or python-pptx inflates every part into memory.

    The declared sizes are checked first (cheap, and an honest bomb stops there), then every
    member is really inflated in bounded reads, counting what comes out: sizes in the
    headers are the sender's word, and the parsers must never see more than the cap.
    """
    too_big = ParseError(
        f"Could not parse {_LABELS[kind]}: the file expands to more than "
        f"{MAX_UNZIPPED_BYTES // (1024 * 1024)} MB.",
        "invalid_file",
    )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if sum(info.file_size for info in members) > MAX_UNZIPPED_BYTES:
                raise too_big
            if any(info.compress_type not in _OFFICE_COMPRESSION for info in members):
                # Office writes stored or deflated parts; bzip2 and LZMA inflate a whole
                # block at once, with no bound on what one read can produce.
                raise ParseError(
                    f"Could not parse {_LABELS[kind]}: it uses a compression method Office "
                    "documents do not use.",
                    "invalid_file",
                )
            inflated = 0
            for info in members:
                with archive.open(info) as member:
                    while block := member.read(_READ_BLOCK):
                        inflated += len(block)
                        if inflated > MAX_UNZIPPED_BYTES:
                            raise too_big
    except ParseError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError, zlib.error):
        raise _corrupt(kind) from None


def _docx(data: bytes) -> str:
    import docx

    _check_zip(data, "docx")
    try:
        document = docx.Document(io.BytesIO(data))
        return "\n".join(_docx_blocks(document.iter_inner_content()))
    except Exception:  # python-docx raises KeyError, ValueError, lxml errors...
        raise _corrupt("docx") from None


def _docx_blocks(blocks: Iterable[Any]) -> Iterator[str]:
    """Paragraphs as lines and table rows as ``cell | cell`` lines, in document order."""
    from docx.table import Table

    for block in blocks:
        if not isinstance(block, Table):
            yield block.text
            continue
        for row in block.rows:
            cells: list[str] = []
            seen: set[int] = set()
            for cell in row.cells:
                if id(cell._tc) in seen:  # a merged cell repeats across the columns it spans
                    continue
                seen.add(id(cell._tc))
                cells.append(" ".join(_docx_blocks(cell.iter_inner_content())).strip())
            yield " | ".join(cells)
        yield ""


def _pptx(data: bytes) -> tuple[str, int]:
    import pptx

    _check_zip(data, "pptx")
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        slides: list[str] = []
        for slide in presentation.slides:
            lines = list(_pptx_shapes(slide.shapes))
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                notes = slide.notes_slide.notes_text_frame.text
                if notes.strip():
                    lines.append(notes)
            slides.append("\n".join(lines))
        return "\n\n".join(slides), len(slides)
    except Exception:  # python-pptx raises KeyError, ValueError, lxml errors...
        raise _corrupt("pptx") from None


def _pptx_shapes(shapes: Iterable[Any]) -> Iterator[str]:
    """Text frames and tables of a slide in its shape order, descending into groups."""
    from pptx.shapes.group import GroupShape

    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _pptx_shapes(shape.shapes)
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            if shape.text_frame.text.strip():
                yield shape.text_frame.text
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                yield " | ".join(cell.text.strip() for cell in row.cells)


__all__ = ["ParseError", "ParseErrorCode", "ParsedDocument", "decode_text", "parse_document"]
