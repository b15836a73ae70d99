"""The MilvusClient API over the embedded engine: collections, writes, reads, validation."""

import numpy as np
import pytest

from harrierdb import CollectionSchema, DataType, FieldSchema, LoadState, MilvusClient
from harrierdb.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    DataError,
    FieldNotFoundError,
    FormatVersionError,
    HarrierError,
    MetricMismatchError,
    ParamError,
    PartitionNotFoundError,
    PrimaryKeyError,
    SchemaError,
)


def full_schema(dim=8, dynamic=False):
    s = MilvusClient.create_schema(enable_dynamic_field=dynamic)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("flag", DataType.BOOL)
    s.add_field("i8", DataType.INT8)
    s.add_field("i16", DataType.INT16)
    s.add_field("i32", DataType.INT32)
    s.add_field("age", DataType.INT64, nullable=True)
    s.add_field("f", DataType.FLOAT)
    s.add_field("d", DataType.DOUBLE, default_value=1.5)
    s.add_field("name", DataType.VARCHAR, max_length=16)
    s.add_field("meta", DataType.JSON, nullable=True)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    return s


def make_rows(n, dim=8, start=0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(start, start + n):
        rows.append({
            "id": i, "flag": bool(i % 2), "i8": i % 100, "i16": i, "i32": i * 10,
            "age": None if i % 5 == 0 else i % 50, "f": float(i) / 3, "name": f"n{i}",
            "meta": {"k": i % 3, "list": [i, i + 1]}, "tags": ["a", "b"][: i % 3],
            "vec": rng.standard_normal(dim).astype(np.float32),
        })
    return rows


@pytest.fixture
def filled(client):
    client.create_collection("c", schema=full_schema())
    rows = make_rows(200)
    client.insert("c", rows)
    return client, rows


def test_quick_create_insert_search_returns_pymilvus_shapes(client):
    client.create_collection("quick", dimension=4)
    assert client.has_collection("quick") and client.list_collections() == ["quick"]
    res = client.insert("quick", [{"id": i, "vector": [i, 1, 0, 0], "color": "red"} for i in range(5)])
    assert res == {"insert_count": 5, "ids": [0, 1, 2, 3, 4]}
    hits = client.search("quick", data=[[4, 1, 0, 0]], limit=2, output_fields=["color"])
    assert len(hits) == 1 and len(hits[0]) == 2
    top = hits[0][0]
    assert top["id"] == 4 and top.id == 4
    assert top["entity"] == {"color": "red"} and top.entity.color == "red"
    assert top["distance"] == pytest.approx(1.0, abs=1e-6)  # COSINE similarity of identical vectors
    assert client.describe_index("quick", "vector")["metric_type"] == "COSINE"


def test_every_scalar_type_round_trips(filled):
    client, rows = filled
    got = client.get("c", ids=[3, 5])
    assert [g["id"] for g in got] == [3, 5]
    for g, r in zip(got, [rows[3], rows[5]]):
        for key in r:
            if key == "vec":
                assert np.allclose(g[key], r[key])
            elif key == "f":
                assert g[key] == pytest.approx(r[key], rel=1e-6)
            else:
                assert g[key] == r[key], key
        assert g["d"] == 1.5  # default_value fills a missing field
    assert got[1]["age"] is None


def test_exact_search_matches_numpy_for_each_metric(client, rng):
    dim, n = 16, 500
    data = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((7, dim)).astype(np.float32)
    for metric in ("L2", "IP", "COSINE"):
        name = f"m_{metric.lower()}"
        client.create_collection(name, dimension=dim, metric_type=metric)
        client.insert(name, [{"id": i, "vector": data[i]} for i in range(n)])
        res = client.search(name, queries, limit=10)
        if metric == "L2":
            ref = ((queries[:, None, :] - data[None]) ** 2).sum(-1)
            order = np.argsort(ref, axis=1)[:, :10]
        else:
            a = data / np.linalg.norm(data, axis=1, keepdims=True) if metric == "COSINE" else data
            q = queries / np.linalg.norm(queries, axis=1, keepdims=True) if metric == "COSINE" else queries
            ref = q @ a.T
            order = np.argsort(-ref, axis=1)[:, :10]
        for qi in range(len(queries)):
            assert [h["id"] for h in res[qi]] == order[qi].tolist()
            assert np.allclose([h["distance"] for h in res[qi]], ref[qi, order[qi]], rtol=1e-4, atol=1e-4)


def test_filter_applies_before_top_k(filled):
    client, rows = filled
    q = rows[0]["vec"]
    res = client.search("c", [q], filter="i32 < 50 and flag == true", limit=10, search_params={"metric_type": "L2"})
    expected = [r["id"] for r in rows if r["i32"] < 50 and r["flag"]]
    assert sorted(h["id"] for h in res[0]) == sorted(expected)  # 2 matches, 2 hits, not 10
    assert len(res[0]) == len(expected) == 2


def test_query_filter_limit_offset_and_count(filled):
    client, rows = filled
    got = client.query("c", filter="age > 10 and name like 'n1%'", output_fields=["id", "age"])
    want = [r["id"] for r in rows if r["age"] is not None and r["age"] > 10 and r["name"].startswith("n1")]
    assert [g["id"] for g in got] == want
    assert set(got[0]) == {"id", "age"}
    page = client.query("c", filter="id >= 0", output_fields=["id"], limit=5, offset=10)
    assert [g["id"] for g in page] == list(range(10, 15))
    assert client.query("c", filter="", output_fields=["count(*)"]) == [{"count(*)": 200}]
    assert client.query("c", filter="age is null", output_fields=["count(*)"])[0]["count(*)"] == 40


def test_delete_by_ids_and_filter_and_upsert(filled):
    client, rows = filled
    assert client.delete("c", ids=[0, 1, 2, 999]) == {"delete_count": 3}
    assert client.delete("c", filter="i32 >= 1900") == {"delete_count": 10}
    assert client.get_collection_stats("c")["row_count"] == 187
    assert client.get("c", ids=[1]) == []
    new = make_rows(1, start=5, seed=9)[0]
    new["name"] = "replaced"
    assert client.upsert("c", [new])["upsert_count"] == 1
    assert client.get("c", ids=[5])[0]["name"] == "replaced"
    assert client.get_collection_stats("c")["row_count"] == 187
    # deleted rows never come back in search
    res = client.search("c", [rows[1]["vec"]], limit=200, search_params={"metric_type": "L2"})
    ids = [h["id"] for h in res[0]]
    assert 1 not in ids and 1950 not in ids and len(ids) == 187 and ids.count(5) == 1


def test_insert_of_existing_key_is_refused_and_nothing_written(filled):
    client, _ = filled
    rows = make_rows(3, start=199)  # 199 exists, 200 and 201 do not
    with pytest.raises(PrimaryKeyError, match="199"):
        client.insert("c", rows)
    assert client.get("c", ids=[200, 201]) == []


@pytest.mark.parametrize("mutate, error, text", [
    (lambda r: r.update(vec=[0.0] * 7), DataError, "dim 7, expected 8"),
    (lambda r: r.update(vec=[float("nan")] * 8), DataError, "NaN"),
    (lambda r: r.update(i8=300), DataError, "out of range"),
    (lambda r: r.update(name="x" * 17), DataError, "max_length"),
    (lambda r: r.update(tags=["a"] * 5), DataError, "max_capacity"),
    (lambda r: r.update(flag="yes"), DataError, "BOOL"),
    (lambda r: r.pop("f"), DataError, "missing field 'f'"),
    (lambda r: r.update(unknown=1), DataError, "enable_dynamic_field"),
    (lambda r: r.pop("id"), DataError, "primary key"),
])
def test_bad_rows_raise_clear_errors_and_write_nothing(filled, mutate, error, text):
    client, _ = filled
    rows = make_rows(3, start=500)
    mutate(rows[2])
    with pytest.raises(error, match=text):
        client.insert("c", rows)
    assert client.get("c", ids=[500, 501]) == []
    assert client.get_collection_stats("c")["row_count"] == 200


def test_duplicate_keys_in_one_call(client):
    client.create_collection("q", dimension=2)
    with pytest.raises(PrimaryKeyError, match="more than once"):
        client.insert("q", [{"id": 1, "vector": [1, 2]}, {"id": 1, "vector": [1, 2]}])


def test_dynamic_fields_are_kept_returned_and_filterable(client):
    client.create_collection("dyn", dimension=2)  # quick form has the dynamic field on
    client.insert("dyn", [{"id": i, "vector": [1, i], "color": ["red", "blue"][i % 2], "n": i} for i in range(6)])
    got = client.query("dyn", filter='color == "blue" and n > 1', output_fields=["color", "n"])
    assert got == [{"id": 3, "color": "blue", "n": 3}, {"id": 5, "color": "blue", "n": 5}]


def test_unknown_names_raise_project_errors(filled):
    client, _ = filled
    with pytest.raises(CollectionNotFoundError, match="nope"):
        client.insert("nope", [{}])
    with pytest.raises(FieldNotFoundError, match="bogus"):
        client.query("c", filter="id > 1", output_fields=["bogus"])
    with pytest.raises(ParamError, match="unknown index type"):
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="NOPE")
        client.create_index("c", ip)
    with pytest.raises(ParamError, match="metric"):
        client.search("c", [[0.0] * 8], search_params={"metric_type": "EUCLID"})
    with pytest.raises(CollectionExistsError):
        client.create_collection("c", schema=full_schema())
    with pytest.raises(PartitionNotFoundError):
        client.insert("c", make_rows(1, start=900), partition_name="p9")
    assert issubclass(FieldNotFoundError, HarrierError)


def test_metric_mismatch_is_refused_not_answered_wrongly(filled):
    client, rows = filled
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 4})
    client.create_index("c", ip)
    desc = client.describe_index("c", "vec")
    assert desc["index_type"] == "IVF_FLAT" and desc["nlist"] == 4  # parameters honoured
    with pytest.raises(MetricMismatchError, match="L2"):
        client.search("c", [rows[0]["vec"]], search_params={"metric_type": "IP"})
    hits = client.search("c", [rows[0]["vec"]], limit=1, search_params={"metric_type": "L2", "params": {"nprobe": 4}})
    assert hits[0][0]["id"] == 0


def test_nested_and_flat_index_params_mean_the_same(client):
    for i, params in enumerate([{"nlist": 64}, {"params": {"nlist": 64}}]):
        s = full_schema()
        client.create_collection(f"x{i}", schema=s)
        ip = client.prepare_index_params()
        ip.add_index("vec", index_type="IVF_FLAT", metric_type="L2", params=params)
        client.create_index(f"x{i}", ip)
        assert client.describe_index(f"x{i}", "vec")["nlist"] == 64


def test_partitions(filled):
    client, rows = filled
    client.create_partition("c", "p1")
    assert client.has_partition("c", "p1") and client.list_partitions("c") == ["_default", "p1"]
    client.insert("c", make_rows(5, start=1000), partition_name="p1")
    res = client.search("c", [rows[0]["vec"]], limit=50, partition_names=["p1"])
    assert sorted(h["id"] for h in res[0]) == list(range(1000, 1005))
    assert len(client.query("c", filter="id >= 0", partition_names=["p1"], output_fields=["id"])) == 5
    client.drop_partition("c", "p1")
    assert client.get("c", ids=[1000]) == []


def test_rows_keep_their_partitions_across_reopen(db_path):
    c1 = MilvusClient(db_path)
    c1.create_collection("c", schema=full_schema())
    for name in ("p1", "p2"):
        c1.create_partition("c", name)
    c1.insert("c", make_rows(6))
    c1.insert("c", make_rows(4, start=100), partition_name="p2")
    c1.insert("c", make_rows(3, start=200), partition_name="p1")
    c1.close()
    c2 = MilvusClient(db_path)  # one read of the rows, with three partitions among them
    for names, expected in ((["p1"], range(200, 203)), (["p2"], range(100, 104)), (["_default"], range(6)),
                            (["p1", "_default"], [*range(6), *range(200, 203)])):
        got = c2.query("c", filter="id >= 0", partition_names=names, output_fields=["id"])
        assert sorted(r["id"] for r in got) == list(expected), names
    c2.close()


def test_reopen_answers_without_load_and_release_frees(db_path):
    c1 = MilvusClient(db_path)
    c1.create_collection("r", dimension=3)
    c1.insert("r", [{"id": 1, "vector": [1, 0, 0]}, {"id": 2, "vector": [0, 1, 0]}])
    c1.close()
    c2 = MilvusClient(db_path)
    assert c2.search("r", [[0, 1, 0]], limit=1)[0][0]["id"] == 2
    assert c2.get_load_state("r")["state"] is LoadState.Loaded
    c2.release_collection("r")
    assert c2.get_load_state("r")["state"] is LoadState.NotLoad
    assert c2.search("r", [[1, 0, 0]], limit=1)[0][0]["id"] == 1
    c2.close()


def test_small_ivf_index_is_searched_exactly(client, rng):
    client.create_collection("s", schema=full_schema())
    rows = make_rows(8)
    client.insert("s", rows)
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 128})
    client.create_index("s", ip)
    res = client.search("s", [rows[3]["vec"]], limit=8, search_params={"metric_type": "L2", "params": {"nprobe": 10}})
    assert len(res[0]) == 8 and res[0][0]["id"] == 3


def test_compact_keeps_live_rows(filled, db_path):
    client, rows = filled
    client.delete("c", filter="id < 150")
    client.compact("c")
    assert client.get_collection_stats("c")["row_count"] == 50
    assert [g["id"] for g in client.query("c", filter="id < 155", output_fields=["id"])] == list(range(150, 155))
    other = MilvusClient(db_path)
    assert other.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"] == 50
    other.close()


def test_rename_and_drop(filled):
    client, _ = filled
    client.rename_collection("c", "d")
    assert client.list_collections() == ["d"]
    assert client.get_collection_stats("d")["row_count"] == 200
    client.drop_collection("d")
    assert client.list_collections() == []


def test_newer_format_is_refused(db_path):
    import sqlite3
    from pathlib import Path
    MilvusClient(db_path).close()
    conn = sqlite3.connect(Path(db_path) / "harrier.sqlite")
    conn.execute("UPDATE meta SET value='99' WHERE key='format_version'")
    conn.commit()
    conn.close()
    with pytest.raises(FormatVersionError, match="99"):
        MilvusClient(db_path)


def test_schema_errors():
    with pytest.raises(SchemaError, match="max_length"):
        FieldSchema("s", DataType.VARCHAR)
    with pytest.raises(SchemaError, match="dim"):
        FieldSchema("v", DataType.FLOAT_VECTOR)
    with pytest.raises(SchemaError, match="primary key"):
        CollectionSchema([FieldSchema("v", DataType.FLOAT_VECTOR, dim=2)]).verify()
    with pytest.raises(SchemaError, match="unknown data type"):
        FieldSchema("x", "QUATERNION")


def test_numpy_2d_queries_and_offset(client, rng):
    client.create_collection("o", dimension=4, metric_type="L2")
    data = rng.standard_normal((50, 4)).astype(np.float32)
    client.insert("o", [{"id": i, "vector": data[i]} for i in range(50)])
    full = client.search("o", data[:3], limit=10)
    paged = client.search("o", data[:3], limit=5, offset=5)
    for f, p in zip(full, paged):
        assert [h["id"] for h in f][5:] == [h["id"] for h in p]
