"""Semantic search over documents: reading, chunking, incremental indexing, search, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from harrierdb.apps.chunking import Heading, chunk_text, sections, token_counter, windows
from harrierdb.apps.documents import (
    html_document,
    index_directory,
    markdown_headings,
    query_terms,
    read_document,
    search_documents,
    snippet,
)
from harrierdb.errors import ParamError

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

GARDEN_MD = """# Growing tomatoes

Tomato plants need at least six hours of direct sunlight every day and deep, regular watering.
Pinch off the suckers that grow between the stem and the branches so the plant puts its energy
into fruit. Stake or cage the vines before they sprawl, and mulch to keep the soil moist.

## Soil and feeding

Tomatoes prefer loose, well-drained soil rich in compost, slightly acidic, with a pH near 6.5.
Feed them with a balanced fertiliser when the first fruits set; too much nitrogen gives leaves
instead of tomatoes.

```
# this is code, not a heading
plant(tomato)
```

Harvest
=======

Pick the fruit when it is fully coloured and slightly soft; it keeps ripening indoors.
"""

PYTHON_TXT = """Python is a programming language that uses indentation to delimit blocks of code.
Its built-in containers are lists, tuples, dictionaries and sets. Functions are defined with def,
classes with class, and exceptions are raised with raise and caught with try and except.
The standard library includes modules for regular expressions, JSON, HTTP servers and SQLite.\r
Virtual environments keep each project's dependencies apart from the system's packages.\r
"""

ASTRONOMY_HTML = """<!doctype html><html><head><title>Astronomy notes</title>
<style>body { color: red }</style><script>var planets = 8;</script></head><body>
<h1>The planets</h1>
<p>Jupiter is the largest planet of the solar system, a gas giant with dozens of moons &amp; a
great red storm that has raged for centuries.</p>
<h2>The Sun</h2>
<p>The Sun is a main-sequence star.<br>In its core it fuses hydrogen into helium, releasing the
energy that lights and warms the Earth.</p>
</body></html>
"""

PDF_PAGES = [["Photosynthesis lets green plants turn sunlight, water and carbon dioxide",
              "into glucose and oxygen inside their chloroplasts."],
             ["Cellular respiration in the mitochondria burns that glucose to release",
              "energy for the cell, giving off carbon dioxide and water."]]


def write_corpus(root: Path) -> dict[str, Path]:
    (root / "notes").mkdir(parents=True)
    files = {"garden": root / "garden.md", "python": root / "notes" / "python.txt",
             "astro": root / "astro.html"}
    files["garden"].write_text(GARDEN_MD, encoding="utf-8")
    files["python"].write_bytes(PYTHON_TXT.encode("utf-8"))  # keep its \r\n exactly
    files["astro"].write_text(ASTRONOMY_HTML, encoding="utf-8")
    (root / "ignored.py").write_text("print('not a document')")
    (root / ".hidden.md").write_text("# secret\nnot indexed")
    return files


def all_chunks(client, collection="docs") -> list[dict]:
    return client.query(collection, filter="", output_fields=["id", "source", "chunk", "char_start",
                                                              "char_end", "heading", "text", "file_hash"])


# -- reading ------------------------------------------------------------------------------------

def test_markdown_headings_atx_setext_and_fences():
    heads = markdown_headings(GARDEN_MD)
    assert [h.title for h in heads] == ["Growing tomatoes", "Soil and feeding", "Harvest"]
    for h in heads:
        assert GARDEN_MD[h.start:].startswith(("#", h.title))


def test_html_text_keeps_headings_and_drops_scripts():
    doc = html_document(ASTRONOMY_HTML)
    assert "var planets" not in doc.text and "color: red" not in doc.text
    assert "moons & a great red storm" in doc.text
    assert "star.\nIn its core" in doc.text
    assert [(h.title, doc.text[h.start:h.start + len(h.title)]) for h in doc.headings] == \
        [("The planets", "The planets"), ("The Sun", "The Sun")]


def test_read_document_refuses_unknown_extensions(tmp_path):
    (tmp_path / "x.docx").write_bytes(b"PK")
    with pytest.raises(ParamError, match="supported extensions"):
        read_document(tmp_path / "x.docx")


def test_pdf_text_and_pages(tmp_path, pdf_writer):
    pdf_writer(tmp_path / "bio.pdf", PDF_PAGES)
    doc = read_document(tmp_path / "bio.pdf")
    assert "Photosynthesis lets green plants" in doc.text and "mitochondria" in doc.text
    assert [h.title for h in doc.headings] == ["page 1", "page 2"]
    assert doc.text.index("Cellular respiration") >= doc.headings[1].start


# -- chunking -----------------------------------------------------------------------------------

def test_chunks_are_token_windows_with_overlap_and_exact_offsets():
    text = " ".join(f"word{i} unbelievably" for i in range(300))
    chunks = chunk_text(text, [], chunk_tokens=50, overlap=10)
    tok = token_counter()
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:]):
        assert text[a.start:a.end] == a.text
        assert tok.count(a.text) <= 50
        assert b.start < a.end < b.end  # neighbours overlap, and the window advances
        assert tok.count(text[b.start:a.end]) >= 8
        assert not text[a.end].isalnum() and not text[b.start - 1].isalnum()  # whole words only
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_windows_cover_every_token_and_always_advance():
    continues = [i % 7 != 0 for i in range(100)]  # words of 7 tokens
    spans = list(windows(continues, 16, 5))
    covered = set()
    for first, last in spans:
        assert 0 < last - first <= 16
        covered |= set(range(first, last))
    assert covered == set(range(100))
    assert all(b[0] > a[0] for a, b in zip(spans, spans[1:]))
    assert list(windows([True] * 40, 16, 5))[0] == (0, 16)  # one giant word is cut, not looped on


def test_sections_start_at_headings():
    text = "intro text\n# A\nbody a\n# B\nbody b"
    heads = [Heading(text.index("# A"), "A"), Heading(text.index("# B"), "B")]
    assert [(text[s:e], t) for s, e, t in sections(text, heads)] == \
        [("intro text\n", ""), ("# A\nbody a\n", "A"), ("# B\nbody b", "B")]


@pytest.mark.parametrize("tokens, overlap", [(0, 0), (255, 10), (50, 50), (50, -1), (True, 0)])
def test_bad_windows_are_refused(tokens, overlap):
    with pytest.raises(ParamError):
        chunk_text("some text", [], tokens, overlap)


# -- indexing -----------------------------------------------------------------------------------

def test_index_keeps_offsets_headings_and_sources(client, tmp_path, pdf_writer):
    files = write_corpus(tmp_path / "docs")
    pdf = tmp_path / "docs" / "biology.pdf"
    pdf_writer(pdf, PDF_PAGES)
    report = index_directory(client, "docs", tmp_path / "docs", chunk_tokens=40, overlap=8)
    expected = {str(p.resolve()) for p in files.values()} | {str(pdf.resolve())}
    assert set(report.added) == expected and not report.skipped
    rows = all_chunks(client)
    assert {r["source"] for r in rows} == expected
    assert report.chunks_inserted == len(rows) > len(expected)
    for r in rows:
        doc = read_document(r["source"])
        assert doc.text[r["char_start"]:r["char_end"]] == r["text"]
        if r["source"].endswith((".md", ".txt")):  # there the offsets are the file's own
            raw = Path(r["source"]).read_bytes().decode("utf-8")
            assert raw[r["char_start"]:r["char_end"]] == r["text"]
    by_heading = {}
    for r in rows:
        by_heading.setdefault(r["heading"], []).append(r["text"])
    assert any("pH near 6.5" in t for t in by_heading["Soil and feeding"])
    assert any("fully coloured" in t for t in by_heading["Harvest"])
    assert any("fuses hydrogen" in t for t in by_heading["The Sun"])
    assert all("not a heading" not in h for h in by_heading)
    assert by_heading[""] and all("Python" in t or "Virtual" in t or "library" in t or "class" in t
                                  for t in by_heading[""])
    assert any("mitochondria" in t for t in by_heading["page 2"])
    garden = sorted((r for r in rows if r["source"].endswith("garden.md")), key=lambda r: r["chunk"])
    assert [r["chunk"] for r in garden] == list(range(len(garden)))


class Spy:
    """Wraps a client's insert and delete and records which sources each touches."""

    def __init__(self, client, monkeypatch):
        self.inserted: list[str] = []
        self.deleted: list[str] = []
        insert, delete = client.insert, client.delete

        def spy_insert(collection, data, **kw):
            self.inserted += [row["source"] for row in data]
            return insert(collection, data, **kw)

        def spy_delete(collection, **kw):
            self.deleted.append(kw["filter_params"]["source"])
            return delete(collection, **kw)

        monkeypatch.setattr(client, "insert", spy_insert)
        monkeypatch.setattr(client, "delete", spy_delete)


def test_reindex_touches_only_changed_files(client, tmp_path, monkeypatch):
    root = tmp_path / "docs"
    files = write_corpus(root)
    index_directory(client, "docs", root, chunk_tokens=40, overlap=8)
    before = {r["id"]: r for r in all_chunks(client)}
    src = {k: str(p.resolve()) for k, p in files.items()}

    spy = Spy(client, monkeypatch)
    again = index_directory(client, "docs", root, chunk_tokens=40, overlap=8)
    assert sorted(again.unchanged) == sorted(src.values())
    assert (spy.inserted, spy.deleted, again.chunks_inserted, again.chunks_deleted) == ([], [], 0, 0)

    files["garden"].write_text(GARDEN_MD.replace("six hours", "eight hours"), encoding="utf-8")
    files["python"].unlink()
    (root / "notes" / "rust.md").write_text("# Rust\nRust has a borrow checker that prevents data races.")
    report = index_directory(client, "docs", root, chunk_tokens=40, overlap=8)
    rust = str((root / "notes" / "rust.md").resolve())
    assert (report.changed, report.deleted, report.added, report.unchanged) == \
        ([src["garden"]], [src["python"]], [rust], [src["astro"]])
    assert set(spy.inserted) == {src["garden"], rust}
    assert sorted(spy.deleted) == sorted([src["garden"], src["python"]])
    after = {r["id"]: r for r in all_chunks(client)}
    old_garden = [i for i, r in before.items() if r["source"] == src["garden"]]
    old_python = [i for i, r in before.items() if r["source"] == src["python"]]
    assert report.chunks_deleted == len(old_garden) + len(old_python)
    assert report.chunks_inserted == len(spy.inserted)
    untouched = [i for i, r in before.items() if r["source"] == src["astro"]]
    assert all(after[i] == before[i] for i in untouched)  # same rows, same ids
    assert not any(r["source"] == src["python"] for r in after.values())
    assert any("eight hours" in r["text"] for r in after.values())
    assert not any("six hours" in r["text"] for r in after.values())

    # a different chunking re-indexes everything
    rechunked = index_directory(client, "docs", root, chunk_tokens=60, overlap=10)
    assert len(rechunked.changed) == 3 and not rechunked.unchanged


def test_index_refuses_bad_input(client, tmp_path):
    with pytest.raises(ParamError, match="not a directory"):
        index_directory(client, "docs", tmp_path / "missing")
    client.create_collection("plain", dimension=4)
    with pytest.raises(ParamError, match="not a documents collection"):
        index_directory(client, "plain", tmp_path)


# -- searching ----------------------------------------------------------------------------------

PARAPHRASES = [  # (query, file key): the queries share few words with their documents
    ("how much sun and water do tomato plants want", "garden"),
    ("which planet is the biggest one orbiting our star", "astro"),
    ("what data structures does the language provide for collections", "python"),
]


@pytest.fixture
def indexed(client, tmp_path):
    files = write_corpus(tmp_path / "docs")
    index_directory(client, "docs", tmp_path / "docs")
    return client, {k: str(p.resolve()) for k, p in files.items()}


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_finds_the_right_file_for_paraphrases(indexed, mode):
    client, src = indexed
    for query, key in PARAPHRASES:
        hits = search_documents(client, "docs", query, k=3, mode=mode)
        assert hits and hits[0].source == src[key], (mode, query, [h.source for h in hits])
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
        top = hits[0]
        assert read_document(top.source).text[top.start:top.end] == top.text


def test_hits_carry_heading_and_highlighted_snippet(indexed):
    client, src = indexed
    hit = search_documents(client, "docs", "hydrogen fusion in the Sun's core", k=1)[0]
    assert hit.source == src["astro"] and hit.heading == "The Sun"
    assert "«hydrogen»" in hit.snippet and "«core»" in hit.snippet
    ansi = search_documents(client, "docs", "hydrogen", k=1, mode="bm25", markers=("\x1b[1m", "\x1b[0m"))
    assert "\x1b[1mhydrogen\x1b[0m" in ansi[0].snippet


def test_snippet_centres_on_matches_and_matches_stems():
    text = "filler " * 100 + "Gardeners were watering the tomatoes daily." + " more" * 100
    out = snippet(text, query_terms("water tomato"), width=120)
    assert out.startswith("…") and out.endswith("…")
    assert "«tomatoes»" in out
    assert len(out) < 200


@pytest.mark.parametrize("kwargs, match", [({"query": " "}, "query"), ({"k": 0}, "k must"),
                                           ({"mode": "fuzzy"}, "mode must")])
def test_search_refuses_bad_arguments(indexed, kwargs, match):
    client, _ = indexed
    args = {"query": "tomato", **kwargs}
    with pytest.raises(ParamError, match=match):
        search_documents(client, "docs", **args)


# -- the command line ---------------------------------------------------------------------------

def test_cli_index_search_ask(tmp_path, monkeypatch, capsys):
    import harrierdb.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("harrierdb.apps.commands",))
    monkeypatch.delenv("HARRIER_LLM_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "docs")
    db = str(tmp_path / "db")
    assert cli.main(["index", db, "docs", "--collection", "kb"]) == 0
    out = capsys.readouterr().out
    assert "added    docs/garden.md" in out and "3 added" in out
    assert cli.main(["index", db, "docs", "--collection", "kb"]) == 0
    assert "3 unchanged" in capsys.readouterr().out

    assert cli.main(["search", db, "largest planet", "--collection", "kb", "--k", "2", "--mode", "bm25"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(" 1. ") and "docs/astro.html:0  [The planets]" in lines[0]
    assert "«largest» «planet»" in lines[1]

    assert cli.main(["ask", db, "What does the Sun fuse in its core?", "--collection", "kb"]) == 0
    out = capsys.readouterr().out
    assert "hydrogen into helium" in out and "[1] docs/astro.html:" in out

    assert cli.main(["search", db, "x", "--collection", "nope"]) == 2
    assert cli.main(["index", db, "docs", "--overlap", "500"]) == 2
