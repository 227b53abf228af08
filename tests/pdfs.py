"""A tiny PDF writer for tests: one page per list of lines, in the standard Helvetica font (which
every PDF reader knows, so nothing is embedded), with a correct cross-reference table."""

from __future__ import annotations

import zlib


def _escaped(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_with_pages(pages: list[list[str]], *, compressed: bool = False) -> bytes:
    """A valid PDF 1.4 whose pages show these lines of (Latin-1) text (its content streams
    Flate-compressed if `compressed`)."""
    count = len(pages)
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(f"{4 + 2 * i} 0 R".encode() for i in range(count)) + b"] /Count "
        + str(count).encode() + b" >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]  # fmt: skip
    for i, lines in enumerate(pages):
        text = "BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"({_escaped(line)}) Tj T*" for line in lines) + " ET"
        stream = zlib.compress(text.encode("latin-1"), 9) if compressed else text.encode("latin-1")
        flate = b" /Filter /FlateDecode" if compressed else b""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length " + str(len(stream)).encode() + flate + b" >>\nstream\n" + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
