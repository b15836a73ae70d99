"""The ``harrier`` command line: info, query, import (JSONL/CSV/Parquet/.npy), export, errors."""

import csv
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harrierdb import DataType, MilvusClient
from harrierdb.cli import main

DIM = 4


def full_schema():
    s = MilvusClient.create_schema(enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("name", DataType.VARCHAR, max_length=32)
    s.add_field("score", DataType.FLOAT)
    s.add_field("weight", DataType.DOUBLE)
    s.add_field("flag", DataType.BOOL)
    s.add_field("small", DataType.INT8)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8)
    s.add_field("meta", DataType.JSON, nullable=True)
    s.add_field("age", DataType.INT64, nullable=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("bits", DataType.BINARY_VECTOR, dim=16)
    return s


def make_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {
            "id": i, "name": f"item {i}, \"quoted\" é", "score": float(rng.standard_normal()),
            "weight": float(rng.standard_normal()) * 1e6, "flag": bool(i % 2), "small": i % 100 - 50,
            "tags": ["a", "bb", "ccc"][: i % 4], "meta": None if i % 5 == 0 else {"k": i % 3, "l": [i]},
            "age": None if i % 7 == 0 else i, "vec": rng.standard_normal(DIM).astype(np.float32),
            "bits": rng.integers(0, 256, 2, dtype=np.uint8).tobytes(),
        }
        if i % 3 == 0:
            row["extra"] = {"dyn": i} if i % 2 else f"text {i}"  # dynamic field
        rows.append(row)
    return rows


def all_rows(client, name):
    return sorted(client.query(name, filter="", limit=None), key=lambda r: r["id"])


@pytest.fixture
def db(tmp_path):
    """A database with collection 'items' (every field type the CLI handles) of 120 rows."""
    path = str(tmp_path / "db")
    with MilvusClient(path) as client:
        client.create_collection("items", schema=full_schema())
        client.insert("items", make_rows(120))
    return path


def run(capsys, *argv):
    """main(argv) in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- info ---------------------------------------------------------------------------------------

def test_info_lists_collections_counts_and_fields(db, capsys):
    with MilvusClient(db) as client:
        client.create_collection("other", dimension=8)
    code, out, err = run(capsys, "info", db)
    assert code == 0 and err == ""
    assert "items: 120 rows" in out and "other: 0 rows" in out
    assert "vec:FLOAT_VECTOR(4)" in out and "name:VARCHAR" in out and "_default" in out

    code, out, _ = run(capsys, "info", db, "--json")
    info = json.loads(out)
    assert info["collections"]["items"]["rows"] == 120
    assert info["collections"]["other"]["indexes"] == {"vector": "AUTOINDEX"}
    assert info["size_bytes"] > 0


# -- query --------------------------------------------------------------------------------------

def test_query_filter_fields_limit_and_count(db, capsys):
    code, out, _ = run(capsys, "query", db, "items", "--filter", "id < 10 and flag", "--fields", "name,age")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert lines == [{"id": i, "name": f"item {i}, \"quoted\" é", "age": None if i % 7 == 0 else i}
                     for i in (1, 3, 5, 7, 9)]

    code, out, _ = run(capsys, "query", db, "items", "--filter", "id >= 100", "--limit", "3")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [100, 101, 102]
    assert len(rows[0]["vec"]) == DIM and len(rows[0]["bits"]) == 16  # binary vector as bits

    code, out, _ = run(capsys, "query", db, "items", "--filter", "extra is not null", "--count")
    assert (code, out) == (0, "40\n")


# -- import -------------------------------------------------------------------------------------

def test_import_jsonl_creates_quick_collection(tmp_path, capsys):
    path, src = tmp_path / "db", tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"id": i, "vector": [i, 0.5, 0.25], "color": "red"}) + "\n"
                           for i in range(25)) + "\n")
    code, out, err = run(capsys, "import", path, "docs", src, "--dimension", 3, "--batch-size", 10)
    assert code == 0, err
    assert out.startswith("imported 25 rows into docs in ") and out.rstrip().endswith(" s")
    with MilvusClient(str(path)) as client:
        rows = all_rows(client, "docs")
    assert len(rows) == 25 and rows[7] == {"id": 7, "vector": [7.0, 0.5, 0.25], "color": "red"}


def test_import_csv_coerces_columns_by_schema(db, tmp_path, capsys):
    src = tmp_path / "rows.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "score", "weight", "flag", "small", "tags", "meta", "age", "vec", "bits",
                    "note"])
        w.writerow([500, "007", "1.5", "2", "true", "-3", '["x","y"]', '{"a": [1, 2]}', "", "[1, 2, 3, 4]",
                    json.dumps([1, 0] * 8), "42"])
        w.writerow([501, "", "0", "-1e3", "False", "0", "[]", "plain text", "9", "[0.5, 0, 0, 0]",
                    json.dumps([0] * 16), ""])
    code, out, err = run(capsys, "import", db, "items", src)
    assert code == 0, err
    with MilvusClient(db) as client:
        a, b = client.get("items", [500, 501])
    assert a == {"id": 500, "name": "007", "score": 1.5, "weight": 2.0, "flag": True, "small": -3,
                 "tags": ["x", "y"], "meta": {"a": [1, 2]}, "age": None, "vec": [1.0, 2.0, 3.0, 4.0],
                 "bits": bytes([0b10101010] * 2), "note": 42}
    assert b["name"] == "" and b["flag"] is False and b["meta"] == "plain text" and b["age"] == 9
    assert "note" not in b  # an empty cell of an undeclared column is no value at all


def test_import_parquet(db, tmp_path, capsys):
    src = tmp_path / "rows.parquet"
    pq.write_table(pa.table({
        "id": [900, 901], "name": ["p", "q"], "score": [0.5, 1.0], "weight": [1.0, 2.0],
        "flag": [True, False], "small": [1, 2], "tags": [["t"], []], "meta": ['{"j": 1}', None],
        "age": [None, 4], "vec": [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]],
        "bits": [[1] * 16, [0] * 16], "color": ["red", None],
    }), src)
    code, out, err = run(capsys, "import", db, "items", src)
    assert code == 0 and "imported 2 rows into items" in out, err
    with MilvusClient(db) as client:
        a, b = client.get("items", [900, 901])
    assert a["meta"] == {"j": 1} and a["color"] == "red" and a["bits"] == b"\xff\xff"
    assert b["meta"] is None and b["age"] == 4 and b["tags"] == [] and "color" not in b


def test_import_npy_with_start_id(tmp_path, capsys):
    path, src = tmp_path / "db", tmp_path / "vecs.npy"
    vectors = np.random.default_rng(3).standard_normal((30, 8)).astype(np.float32)
    np.save(src, vectors)
    code, _, err = run(capsys, "import", path, "emb", src, "--dimension", 8, "--start-id", 1000,
                       "--batch-size", 7)
    assert code == 0, err
    with MilvusClient(str(path)) as client:
        rows = all_rows(client, "emb")
    assert [r["id"] for r in rows] == list(range(1000, 1030))
    np.testing.assert_array_equal(np.array([r["vector"] for r in rows], np.float32), vectors)


def test_import_refuses_duplicates_unless_upsert(db, tmp_path, capsys):
    src = tmp_path / "rows.jsonl"
    rows = [{**r, "vec": r["vec"].tolist(), "bits": list(np.unpackbits(np.frombuffer(r["bits"], np.uint8)))}
            for r in make_rows(3, seed=9)]
    src.write_text("".join(json.dumps(r, default=int) + "\n" for r in rows))
    code, _, err = run(capsys, "import", db, "items", src)
    assert code == 2 and "already exists" in err and "use upsert" in err
    code, out, err = run(capsys, "import", db, "items", src, "--upsert")
    assert code == 0 and "imported 3 rows" in out, err
    with MilvusClient(db) as client:
        assert client.get("items", [0])[0]["score"] == pytest.approx(rows[0]["score"])
        assert client.get_collection_stats("items")["row_count"] == 120


# -- export -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_export_then_import_round_trips_exactly(db, tmp_path, capsys, ext):
    out_file = tmp_path / f"items.{ext}"
    code, out, err = run(capsys, "export", db, "items", out_file)
    assert code == 0 and out.startswith(f"exported 120 rows from items to {out_file}"), err
    with MilvusClient(db) as client:
        client.create_collection("copy", schema=full_schema())
    code, out, err = run(capsys, "import", db, "copy", out_file, "--batch-size", 50)
    assert code == 0 and "imported 120 rows into copy" in out, err
    with MilvusClient(db) as client:
        original, copy = all_rows(client, "items"), all_rows(client, "copy")
    assert copy == original


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_export_filter_and_fields(db, tmp_path, capsys, ext):
    out_file = tmp_path / f"part.{ext}"
    code, out, err = run(capsys, "export", db, "items", out_file, "--filter", "id in [3, 4, 6]",
                         "--fields", "name,extra")
    assert code == 0 and "exported 3 rows" in out, err
    if ext == "jsonl":
        rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    else:
        rows = pq.read_table(out_file).to_pylist()
        rows = [{k: v for k, v in r.items() if k != "$meta"} | json.loads(r["$meta"] or "{}") for r in rows]
    assert rows == [{"id": 3, "name": 'item 3, "quoted" é', "extra": {"dyn": 3}},
                    {"id": 4, "name": 'item 4, "quoted" é'},
                    {"id": 6, "name": 'item 6, "quoted" é', "extra": "text 6"}]


# -- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["query", "{db}", "items", "--filter", "id <"], "error: filter syntax error"),
    (["query", "{db}", "missing"], "error: collection 'missing' does not exist"),
    (["export", "{db}", "missing", "{tmp}/x.jsonl"], "error: collection 'missing' does not exist"),
    (["query", "{db}", "items", "--limit", "-1"], "error: --limit must be >= 0"),
    (["info", "{tmp}/nowhere"], "error: no HarrierDB database at"),
    (["import", "{db}", "items", "{tmp}/absent.jsonl"], "error: no such file"),
    (["import", "{db}", "items", "{tmp}/rows.txt"], "error: cannot tell the format"),
    (["import", "{db}", "new", "{tmp}/bad.jsonl"], "pass --dimension"),
    (["import", "{db}", "items", "{tmp}/bad.jsonl"], "bad.jsonl:2: invalid JSON"),
    (["import", "{db}", "items", "{tmp}/bad.csv"], "bad.csv:2: column 'id' (INT64): cannot parse 'x'"),
])
def test_user_errors_exit_2_with_a_message(db, tmp_path, capsys, argv, message):
    (tmp_path / "rows.txt").write_text("")
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n{not json\n')
    (tmp_path / "bad.csv").write_text("id,name\nx,y\n")
    code, out, err = run(capsys, *(a.format(db=db, tmp=tmp_path) for a in argv))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") <= 3


def test_import_failure_reports_rows_already_committed(db, tmp_path, capsys):
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"id": i, "vector": [1.0, 2.0]}) + "\n" for i in range(10))
                   + json.dumps({"id": 10, "vector": [1.0]}) + "\n")
    code, _, err = run(capsys, "import", db, "fresh", src, "--dimension", 2, "--batch-size", 4)
    assert code == 2 and "has dim 1, expected 2" in err and "after 8 rows were imported" in err
    with MilvusClient(db) as client:
        assert client.get_collection_stats("fresh")["row_count"] == 8  # two whole batches


def test_usage_error_and_help_return_codes(capsys):
    assert main(["query"]) == 2
    assert "usage: harrier query" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "import" in capsys.readouterr().out


def test_console_script_runs_in_a_subprocess(db, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "harrierdb.cli", "query", db, "items", "--count"],
                        capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "120\n", "")
    bad = subprocess.run([sys.executable, "-m", "harrierdb.cli", "query", db, "items", "--filter", "(("],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
