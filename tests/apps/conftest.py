"""Fixtures for the document apps: PDF files, a WordNet corpus, a local chat endpoint."""

from __future__ import annotations

import json
import os
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")


# -- PDF ----------------------------------------------------------------------------------------

def write_pdf(path: Path, pages: list[list[str]]) -> None:
    """A PDF with one page per list of text lines (reportlab if installed, else by hand)."""
    try:
        from reportlab.pdfgen import canvas
    except ImportError:
        path.write_bytes(minimal_pdf(pages))
        return
    c = canvas.Canvas(str(path))
    for lines in pages:
        text = c.beginText(72, 770)
        text.setFont("Helvetica", 11)
        for line in lines:
            text.textLine(line)
        c.drawText(text)
        c.showPage()
    c.save()


def minimal_pdf(pages: list[list[str]]) -> bytes:
    """A hand-written PDF 1.4 file: Helvetica text streams, one page per list of lines."""
    def escape(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    n = len(pages)
    font = 3 + 2 * n
    objects = ["<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>"]
    for i, lines in enumerate(pages):
        ops = "".join(f"({escape(line)}) Tj T* " for line in lines)
        stream = f"BT /F1 11 Tf 14 TL 72 770 Td {ops}ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.fixture
def pdf_writer():
    """``write_pdf(path, pages)``; skips the test when pypdf cannot read PDFs back."""
    pytest.importorskip("pypdf")
    return write_pdf


# -- WordNet ------------------------------------------------------------------------------------

def wordnet_synsets() -> list[tuple[str, list[str], str]]:
    """(offset, lemmas, gloss) of every noun synset in Debian's wordnet-base."""
    out = []
    with open(WORDNET_NOUNS, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(" "):  # the licence header
                continue
            head, _, gloss = line.partition("|")
            fields = head.split()
            count = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            out.append((fields[0], lemmas, gloss.strip()))
    return out


@pytest.fixture(scope="session")
def wordnet_corpus(tmp_path_factory):
    """A directory of N WordNet noun synsets, one "lemma, lemma: gloss" file each (N from
    $HARRIER_RAG_SYNSETS, default 600), and "What is X?" questions for lemmas X that name
    exactly one of them: (directory, {file stem: lemmas}, [(file stem, question)])."""
    if not WORDNET_NOUNS.is_file():
        pytest.skip("WordNet is not installed (apt-get install wordnet-base)")
    n = int(os.environ.get("HARRIER_RAG_SYNSETS", "600"))
    chosen = random.Random(0).sample(wordnet_synsets(), n)
    directory = tmp_path_factory.mktemp("wordnet") / "docs"
    directory.mkdir()
    for offset, lemmas, gloss in chosen:
        (directory / f"{offset}.txt").write_text(f"{', '.join(lemmas)}: {gloss}\n", encoding="utf-8")
    named = Counter(lemma.lower() for _, lemmas, _ in chosen for lemma in set(lemmas))
    questions = [(offset, f"What is {lemmas[0]}?") for offset, lemmas, _ in chosen
                 if named[lemmas[0].lower()] == 1]
    return directory, {offset: lemmas for offset, lemmas, _ in chosen}, questions


# -- an OpenAI-compatible chat endpoint ---------------------------------------------------------

class ChatServer:
    """Answers POST /v1/chat/completions with ``reply`` (a function of the request body),
    records each request, and refuses any beyond ``max_requests``."""

    def __init__(self, reply, max_requests: int = 20, status: int = 200):
        self.requests: list[dict] = []
        self.reply = reply
        self.status = status
        self.max_requests = max_requests
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = min(int(self.headers.get("Content-Length", 0)), 1 << 22)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if len(server.requests) > server.max_requests:
                    self._send(503, {"error": "too many requests for this test server"})
                elif server.status != 200:
                    self._send(server.status, {"error": {"message": "model exploded"}})
                else:
                    content = server.reply(body)
                    self._send(200, {"id": "cmpl-1", "object": "chat.completion",
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": content}}]})

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def chat_server():
    """Start a :class:`ChatServer` with ``chat_server(reply, ...)``; all stop at the end."""
    servers: list[ChatServer] = []

    def start(reply, **kwargs) -> ChatServer:
        server = ChatServer(reply, **kwargs).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
