"""Document parsing for file search, on real documents built here."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import tracemalloc
import zipfile

import docx
import pptx
import pytest
from pptx.util import Inches
from pypdf import PdfReader, PdfWriter

from assistd.retrieval import parsers
from assistd.retrieval.parsers import ParseError, decode_text, parse_document


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one Helvetica text line per page, xref offsets computed."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Leave policy", level=1)
    document.add_paragraph("Employees get 25 days of paid leave.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Grade"
    table.cell(0, 1).text = "Days"
    table.cell(1, 0).text = "Senior"
    table.cell(1, 1).text = "30"
    document.add_paragraph("Ask HR for details.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pptx() -> bytes:
    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    assert first.shapes.title is not None
    first.shapes.title.text = "Quarterly results"
    first.placeholders[1].text_frame.text = "Revenue grew 12%"
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    assert second.shapes.title is not None
    second.shapes.title.text = "Next steps"
    box = second.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1))
    box.text_frame.text = "Hire two engineers"
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def test_pdf_text_and_real_page_count() -> None:
    parsed = parse_document(make_pdf(["Hello page one", "Second page", "Third"]), "report.pdf")
    assert parsed.kind == "pdf"
    assert parsed.pages == 3
    assert parsed.text == "Hello page one\n\nSecond page\n\nThird"


def test_pdf_is_sniffed_when_the_name_lies_or_is_missing() -> None:
    data = make_pdf(["Sniffed"])
    assert parse_document(data, "notes.txt").text == "Sniffed"
    assert parse_document(data, "blob").kind == "pdf"
    assert parse_document(b"\n\n" + data, "upload.bin").kind == "pdf"


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4\nthis is not a pdf", make_pdf(["cut short"])[:150], b"plain text"],
)
def test_corrupt_pdf_is_invalid_file(data: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(data, "broken.pdf")
    assert caught.value.code == "invalid_file"
    assert caught.value.message == "Could not parse PDF: the file is corrupt."


def test_encrypted_pdf_is_refused_but_owner_only_password_opens() -> None:
    with pytest.raises(ParseError, match="encrypted") as caught:
        parse_document(encrypt_pdf(make_pdf(["Secret"]), "pw"), "locked.pdf")
    assert caught.value.code == "invalid_file"
    assert parse_document(encrypt_pdf(make_pdf(["Open"]), ""), "open.pdf").text == "Open"


def test_pdf_without_text_says_so() -> None:
    with pytest.raises(ParseError, match="contains no text") as caught:
        parse_document(make_pdf([""]), "scan.pdf")
    assert caught.value.code == "invalid_file"


def test_docx_paragraphs_and_table_cells_in_order() -> None:
    parsed = parse_document(make_docx(), "policy.docx")
    assert parsed.kind == "docx"
    assert parsed.pages == 1
    assert parsed.text.splitlines() == [
        "Leave policy",
        "Employees get 25 days of paid leave.",
        "Grade | Days",
        "Senior | 30",
        "",
        "Ask HR for details.",
    ]
    assert parse_document(make_docx(), "renamed.bin").kind == "docx"


def test_pptx_slides_in_order_with_slide_count() -> None:
    parsed = parse_document(make_pptx(), "deck.pptx")
    assert parsed.kind == "pptx"
    assert parsed.pages == 2
    assert parsed.text == "Quarterly results\nRevenue grew 12%\n\nNext steps\nHire two engineers"
    assert parse_document(make_pptx(), "deck", mime="application/octet-stream").pages == 2


@pytest.mark.parametrize("name", ["broken.docx", "broken.pptx"])
def test_corrupt_office_files_are_invalid_file(name: str) -> None:
    label = name.rsplit(".", 1)[1].upper()
    for data in (b"PK\x03\x04 not really a zip", b"not a zip at all", make_docx()[:300]):
        with pytest.raises(ParseError) as caught:
            parse_document(data, name)
        assert caught.value.code == "invalid_file"
        assert caught.value.message == f"Could not parse {label}: the file is corrupt."


def test_docx_named_zip_without_a_document_is_corrupt() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ParseError) as caught:
        parse_document(buffer.getvalue(), "fake.docx")
    assert caught.value.code == "invalid_file"


def _docx_with_padding(padding: int, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """``make_docx()`` with ``padding`` bytes of whitespace inside word/document.xml."""
    source = zipfile.ZipFile(io.BytesIO(make_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                end = data.rindex(b"</w:document>")
                data = data[:end] + b" " * padding + data[end:]
            archive.writestr(info.filename, data)
    return out.getvalue()


def forge_size(data: bytes, name: str, size: int) -> bytes:
    """The zip with member ``name``'s uncompressed size rewritten to ``size`` in both the
    local header and the central directory, as a forged archive would claim."""
    forged = bytearray(data)
    local = zipfile.ZipFile(io.BytesIO(data)).getinfo(name).header_offset
    struct.pack_into("<I", forged, local + 22, size)
    central = forged.find(b"PK\x01\x02")
    while forged[central + 46 : central + 46 + len(name)] != name.encode():
        central = forged.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", forged, central + 24, size)
    return bytes(forged)


def test_zip_bomb_is_refused_by_its_declared_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsers, "MAX_UNZIPPED_BYTES", 2 * 1024 * 1024)
    with pytest.raises(ParseError) as caught:
        parse_document(_docx_with_padding(4 * 1024 * 1024), "bomb.docx")
    assert caught.value.code == "invalid_file"
    assert caught.value.message == "Could not parse DOCX: the file expands to more than 2 MB."
    # Under the cap, padding is only whitespace: the document reads as before.
    assert "25 days" in parse_document(_docx_with_padding(512 * 1024), "ok.docx").text


def test_zip_bomb_with_forged_sizes_is_never_inflated_past_them() -> None:
    # The headers claim 1 KB; the deflated stream holds 64 MB. Reading stops at what was
    # claimed and the member fails its CRC: corrupt, and nothing near 64 MB is ever held.
    data = forge_size(_docx_with_padding(64 * 1024 * 1024), "word/document.xml", 1024)
    tracemalloc.start()
    try:
        with pytest.raises(ParseError) as caught:
            parse_document(data, "forged.docx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.message == "Could not parse DOCX: the file is corrupt."
    assert peak < 16 * 1024 * 1024


@pytest.mark.parametrize("compression", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_office_files_with_other_compression_are_refused(compression: int) -> None:
    # bzip2 and LZMA inflate a whole block per read, unbounded: Office never uses them.
    with pytest.raises(ParseError) as caught:
        parse_document(_docx_with_padding(0, compression), "odd.docx")
    assert caught.value.code == "invalid_file"
    assert "compression method" in caught.value.message


def test_html_drops_scripts_and_styles_and_keeps_blocks() -> None:
    page = b"""<!doctype html><html><head><title>Handbook</title>
    <style>body { color: red }</style><script>var secret = "hidden";</script></head>
    <body><h1>Leave</h1><p>Employees get   25 days&nbsp;of <b>paid</b> leave.</p>
    <ul><li>One</li><li>Two &amp; three</li></ul><noscript>enable js</noscript>
    <table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>
    <pre>keep   this
  indented</pre></body></html>"""
    parsed = parse_document(page, "page.html")
    assert "hidden" not in parsed.text
    assert "color" not in parsed.text
    assert "enable js" not in parsed.text
    assert parsed.text.splitlines() == [
        "Handbook",
        "",
        "Leave",
        "",
        "Employees get 25 days of paid leave.",
        "",
        "One",
        "",
        "Two & three",
        "",
        "A | B",
        "",
        "1 | 2",
        "",
        "keep   this",
        "indented",
    ]


def test_markdown_rst_and_code_are_kept_as_written() -> None:
    markdown = "# Title\n\n- item *one*\n\n```python\nprint('x')\n```\n"
    assert parse_document(markdown.encode(), "README.md").text == markdown.strip("\n")
    assert parse_document(markdown.encode(), "notes.markdown").kind == "markdown"
    source = "def add(a, b):\r\n    return a + b\r\n"
    parsed = parse_document(source.encode(), "math.py")
    assert parsed.kind == "code"
    assert parsed.text == "def add(a, b):\n    return a + b"
    for name in ("a.ts", "b.go", "c.rs", "d.yaml", "e.sql", "f.toml", "Dockerfile"):
        assert parse_document(b"x = 1", name).kind == "code"


def test_json_is_pretty_printed_and_bad_json_kept_as_text() -> None:
    parsed = parse_document(json.dumps({"name": "Zoë", "tags": [1, 2]}).encode(), "d.json")
    assert parsed.text == '{\n  "name": "Zoë",\n  "tags": [\n    1,\n    2\n  ]\n}'
    lines = b'{"a": 1}\n{"a": 2}\n'
    assert parse_document(lines, "d.jsonl").text == '{"a": 1}\n{"a": 2}'


def test_csv_rows_as_lines() -> None:
    data = b'name,city\r\nAda,"London, UK"\r\nAlan,Wilmslow\r\n'
    assert parse_document(data, "people.csv").text == (
        "name | city\nAda | London, UK\nAlan | Wilmslow"
    )
    assert parse_document(b"a\tb\n1\t2\n", "t.tsv").text == "a | b\n1 | 2"


def test_text_encodings() -> None:
    text = "Grüße, 世界 🌍"
    assert parse_document(b"\xef\xbb\xbf" + text.encode(), "a.txt").text == text
    assert parse_document(text.encode("utf-16"), "b.txt").text == text
    assert parse_document(text.encode("utf-32"), "d.txt").text == text
    windows = "café \u2013 naïve"  # the en dash is 0x96 in Windows-1252, unassigned in Latin-1
    assert parse_document(windows.encode("cp1252"), "e.txt").text == windows
    assert decode_text("x\u0081y".encode("latin-1")) == "x\u0081y"


def test_bom_lies_about_utf16_without_bom_and_binary_junk_fail() -> None:
    junk = random.Random(7).randbytes(4096)
    for data in (junk, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "text".encode("utf-16-le")):
        with pytest.raises(ParseError, match="binary") as caught:
            parse_document(data, "file.txt")
        assert caught.value.code == "invalid_file"
    with pytest.raises(ParseError, match="byte order mark"):
        parse_document(b"\xff\xfe\x00\xd8", "odd.txt")  # a lone surrogate in UTF-16
    short_junk = bytes(range(1, 9)) * 4
    with pytest.raises(ParseError, match="binary"):
        parse_document(short_junk, "junk")


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n", "\ufeff".encode()])
def test_empty_files_fail(data: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(data, "empty.txt")
    assert caught.value.code == "invalid_file"
    assert caught.value.message in ("The file is empty.", "The file contains no text.")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("setup.exe", "Unsupported file type '.exe' for file search."),
        ("photo.PNG", "Unsupported file type '.png' for file search."),
        (
            "old.doc",
            "Unsupported file type '.doc' for file search: save it as '.docx' and upload it again.",
        ),
    ],
)
def test_unsupported_extensions(name: str, message: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(b"MZ\x90\x00\x03", name)
    assert caught.value.code == "unsupported_file"
    assert caught.value.message == message
    assert str(caught.value) == message


def test_unknown_extension_with_a_text_mime_and_no_extension_are_text() -> None:
    assert parse_document(b"WEBVTT\n\nhello", "subs.vtt", mime="text/vtt").kind == "text"
    assert parse_document(b"<p>hi</p>", "x.unknown", mime="text/html; charset=utf-8").text == "hi"
    assert parse_document(b"just words", "noextension").text == "just words"
    assert parse_document(b"path/with.dots/file", os.path.join("dir.d", "file")).kind == "text"


def test_other_zip_formats_are_unsupported() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(ParseError) as caught:
        parse_document(buffer.getvalue(), "sheet.xlsx")
    assert caught.value.code == "unsupported_file"


def test_page_estimate_for_text() -> None:
    assert parse_document(b"short", "a.txt").pages == 1
    assert parse_document(b"word " * 1500, "b.txt").pages == 3  # 7,499 characters
