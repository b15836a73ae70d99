"""The article's tutorial code, with only its Python syntax errors fixed and imports pointed
at harrierdb; random 50-d vectors stand in for GloVe."""

import subprocess
import sys
import textwrap

import numpy as np

TUTORIAL = textwrap.dedent('''
    import json, sys
    import numpy as np
    from harrierdb import MilvusClient
    from harrierdb import connections, FieldSchema, CollectionSchema, DataType

    client = MilvusClient(sys.argv[1])

    fields = [ FieldSchema(name="pk", dtype=DataType.INT64, is_primary=True, auto_id=False), FieldSchema(name="words", dtype=DataType.VARCHAR, max_length=50), FieldSchema(name="embeddings", dtype=DataType.FLOAT_VECTOR, dim=50)]
    schema = CollectionSchema(fields, "Demo to store and retrieve embeddings")
    demo_milvus = client.create_collection("milvus_demo", schema)

    rng = np.random.default_rng(7)
    model = {w: rng.standard_normal(50).astype(np.float32)
             for w in ['ice','water','cold','tree','man','woman','child','female']}
    ice = model['ice']
    water = model['water']
    cold = model['cold']
    tree = model['tree']
    man = model['man']
    woman = model['woman']
    child = model['child']
    female = model['female']

    data = [ [1,2,3,4,5,6,7,8], # field pk
     ['ice','water','cold','tree','man','woman','child','female'], # field words
    [ice, water, cold, tree, man, woman, child, female], # field embeddings
    ]
    insert_result = demo_milvus.insert(data)

    demo_milvus.flush()

    index = { "index_type": "IVF_FLAT", "metric_type": "L2", "params": {"nlist": 128},}
    demo_milvus.create_index("embeddings", index)

    demo_milvus.load()
    data = [cold]
    search_params = { "metric_type": "L2", "params": {"nprobe": 10},}
    result = demo_milvus.search(data, "embeddings", search_params, limit=4, output_fields=["words"])
    print(json.dumps([[hit.id, hit.entity.get("words"), hit.distance] for hit in result[0]]))
''')

REOPEN = textwrap.dedent('''
    import json, sys
    import numpy as np
    from harrierdb import MilvusClient
    client = MilvusClient(sys.argv[1])
    rng = np.random.default_rng(7)
    words = ['ice','water','cold','tree','man','woman','child','female']
    vecs = {w: rng.standard_normal(50).astype(np.float32) for w in words}
    res = client.search("milvus_demo", [vecs["cold"]], anns_field="embeddings", limit=4,
                        output_fields=["words"], search_params={"metric_type": "L2"})
    print(json.dumps([[h["pk"], h["entity"]["words"], h["distance"]] for h in res[0]]))
''')


def expected():
    rng = np.random.default_rng(7)
    words = ['ice', 'water', 'cold', 'tree', 'man', 'woman', 'child', 'female']
    vecs = np.stack([rng.standard_normal(50).astype(np.float32) for _ in words])
    d = ((vecs - vecs[2]) ** 2).sum(axis=1)
    order = np.argsort(d)[:4]
    return [(int(i) + 1, words[i], float(d[i])) for i in order]


def run(code, path):
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True)
    import json
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tutorial_runs_and_returns_exact_neighbours(tmp_path):
    path = str(tmp_path / "milvus_demo.db")
    got = run(TUTORIAL, path)
    want = expected()
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[1] for g in got] == [w[1] for w in want]
    assert np.allclose([g[2] for g in got], [w[2] for w in want], rtol=1e-4, atol=1e-4)
    assert got[0][1] == "cold" and got[0][2] < 1e-4
    # a new process reopening the file answers at once, without load()
    again = run(REOPEN, path)
    assert [g[0] for g in again] == [g[0] for g in got]
    assert np.allclose([g[2] for g in again], [g[2] for g in got], atol=1e-5)
