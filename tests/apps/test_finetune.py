"""Fine-tuning on WordNet (lemma or example sentence -> gloss), export, and re-embedding."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from harrierdb import DataType
from harrierdb.apps.finetune import (
    batches_without_duplicates,
    check_pairs,
    eval_set,
    finetune,
    ranking_metrics,
    read_pairs,
    split_pairs,
)
from harrierdb.errors import ModelMismatchError, ParamError

WORDNET = Path("/usr/share/wordnet")  # Debian's wordnet-base
N_TRAIN, N_EVAL = 800, 200


def wordnet_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (query, gloss) pairs of distinct noun and verb synsets, in a seeded order.

    The query is the synset's lemma names ("hand shovel") or, for every other pair, its
    first example sentence when it has one; the text is the definition without examples.
    """
    synsets = []
    for part in ("noun", "verb"):
        for line in (WORDNET / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:  # license header
                continue
            head, gloss = line.split("|", 1)
            fields = head.split()
            count = int(fields[3], 16)
            lemmas = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]]
            definition, *rest = [g.strip() for g in gloss.split(";")]
            examples = [e.strip('"') for e in rest if len(e) > 2 and e[0] == e[-1] == '"']
            if len(definition) >= 10:
                synsets.append((lemmas, definition, examples))
    rng = np.random.default_rng(seed)
    seen, pairs = set(), []
    for i in rng.permutation(len(synsets)):
        lemmas, definition, examples = synsets[i]
        if definition in seen:
            continue
        seen.add(definition)
        pairs.append((examples[0] if examples and len(pairs) % 2 else ", ".join(lemmas), definition))
        if len(pairs) == n:
            break
    return pairs


def need_training_stack() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from harrierdb.embed.weights import packaged_files

    try:
        packaged_files("all-MiniLM-L6-v2", "float32")
    except ParamError as exc:
        pytest.skip(f"float32 weights unavailable: {exc.message}")


# -- pieces that need no torch ------------------------------------------------------------------------

def test_ranking_metrics():
    scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.3]])
    m = ranking_metrics(scores, [{1}, {0, 2}], k=2)
    ndcg_q1 = (1 / np.log2(3)) / 1.0
    ndcg_q2 = 1.0 / (1 + 1 / np.log2(3))
    assert m["ndcg@2"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert m["recall@2"] == pytest.approx((1.0 + 0.5) / 2)


def test_pairs_split_and_batches(tmp_path):
    pairs = [(f"q{i}", f"t{i % 7}") for i in range(30)]
    train, held = split_pairs(pairs, 0.3, seed=1)
    assert not {t for _, t in train} & {t for _, t in held} and len(train) + len(held) == 30
    queries, relevant, corpus = eval_set(held, [t for _, t in train])
    assert len(corpus) == 7 and all(len(r) == 1 for r in relevant) and len(queries) == len(held)
    batches = batches_without_duplicates(pairs, 5, np.random.default_rng(0))
    for batch in batches:
        assert len({t for _, t in batch}) == len(batch) <= 5
    assert check_pairs([{"query": "a", "text": "b"}, ["c", "d"]]) == [("a", "b"), ("c", "d")]
    path = tmp_path / "p.jsonl"
    path.write_text('{"query": "a", "text": "b"}\n\n["c", "d"]\n')
    assert read_pairs(path) == [("a", "b"), ("c", "d")]
    path.write_text('{"query": "a"}\n')
    with pytest.raises(ParamError, match=r"p.jsonl:1: .*'query' and 'text'"):
        read_pairs(path)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"), ({"batch_size": 1}, "batch_size"), ({"lr": -1.0}, "lr"),
    ({"eval_fraction": 1.0}, "eval_fraction"), ({"warmup": 2}, "warmup"), ({"seed": -1}, "seed"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    pairs = [("a", "b"), ("c", "d"), ("e", "f")]
    with pytest.raises(ParamError, match=match):
        finetune(pairs, output_dir=tmp_path / "out", **kwargs)
    with pytest.raises(ParamError, match="pairs"):
        finetune("not pairs", output_dir=tmp_path / "out")
    with pytest.raises(ParamError, match="non-empty"):
        finetune([("a", "")], output_dir=tmp_path / "out")


def test_refuses_non_empty_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep me")
    with pytest.raises(ParamError, match="not empty"):
        finetune([("a", "b"), ("c", "d"), ("e", "f")], output_dir=tmp_path / "out", eval_fraction=0)


# -- the real thing ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wordnet():
    if not (WORDNET / "data.noun").is_file():
        pytest.skip("WordNet is not installed (apt-get install wordnet-base)")
    pairs = wordnet_pairs(N_TRAIN + N_EVAL)
    return pairs[:N_TRAIN], pairs[N_TRAIN:]


@pytest.fixture(scope="module")
def tuned(wordnet, tmp_path_factory):
    need_training_stack()
    train, held = wordnet
    out = tmp_path_factory.mktemp("tuned") / "wordnet-minilm"
    result = finetune(train, eval_pairs=held, output_dir=out, epochs=1, batch_size=32, lr=1e-4, seed=0)
    print("\n" + result.summary())
    return result


def test_finetune_improves_held_out_ndcg(tuned, wordnet):
    train, held = wordnet
    assert not {t for _, t in train} & {t for _, t in held}  # disjoint synsets
    assert tuned.train_pairs == N_TRAIN and tuned.eval_queries == N_EVAL and tuned.corpus_size == 1000
    assert tuned.after["ndcg@10"] > tuned.before["ndcg@10"]
    assert tuned.after["recall@10"] >= tuned.before["recall@10"]


def test_export_loads_in_both_runtimes(tuned, tmp_path):
    from harrierdb.embed.dense import SentenceEmbedding

    out = tuned.output_dir
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (out / name).is_file()
    texts = ["a shovel that is operated by hand", "money paid out"]
    model = SentenceEmbedding(model_dir=out)
    assert model.dim == 384 and model.identity.name == "wordnet-minilm"
    vectors = model.encode_documents(texts)
    numpy_dir = tmp_path / "numpy-only"
    numpy_dir.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copy(out / name, numpy_dir / name)
    numpy_model = SentenceEmbedding(model_dir=numpy_dir)
    assert numpy_model.identity.version == "float32"
    assert np.abs(numpy_model.encode_documents(texts) - vectors).max() < 1e-3
    assert tuned.onnx == (out / "model.onnx").is_file()
    if tuned.onnx:
        assert model.identity.version == "onnx"
    original = SentenceEmbedding(precision="float32").encode_documents(texts)
    assert np.abs(original - numpy_model.encode_documents(texts)).max() > 1e-3  # it did change


def test_reembed_migrates_collection_to_tuned_model(tuned, wordnet, client):
    from harrierdb.embed.dense import SentenceEmbedding
    from harrierdb.migrate import reembed

    _, held = wordnet
    original, model = SentenceEmbedding(), SentenceEmbedding(model_dir=tuned.output_dir)
    schema = client.create_schema(enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=1024)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=384)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("glosses", schema=schema, index_params=index)
    texts = [t for _, t in held]
    vectors = original.encode_documents(texts)
    client.insert("glosses", [{"id": i, "text": t, "vector": v} for i, (t, v) in enumerate(zip(texts, vectors))])

    assert reembed(client, "glosses", "text", "vector", model, "glosses_tuned") == len(texts)
    queries = [q for q, _ in held[:50]]
    hits = client.search("glosses_tuned", data=model.encode_queries(queries), limit=10,
                         output_fields=["text"])
    found = sum(any(h["id"] == i for h in row) for i, row in enumerate(hits))
    assert found >= 0.6 * len(queries)
    with pytest.raises(ModelMismatchError):
        client.search("glosses_tuned", data=original.encode_queries(queries[:1]), limit=5)
    with pytest.raises(ModelMismatchError):
        client.search("glosses", data=model.encode_queries(queries[:1]), limit=5)
    assert client.search("glosses", data=original.encode_queries(queries[:1]), limit=5)[0]


def test_cli_finetune_prints_before_after_and_reembed_hint(wordnet, tmp_path, monkeypatch, capsys):
    need_training_stack()
    import harrierdb.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("harrierdb.apps.app_commands",))
    train, _ = wordnet
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"query": q, "text": t}) + "\n" for q, t in train[:16]))
    out = tmp_path / "model"
    argv = ["finetune", "--pairs", str(path), "--output", str(out), "--epochs", "1",
            "--batch-size", "4", "--eval-fraction", "0.25", "--no-onnx"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "ndcg@10" in printed and "before" in printed and "after" in printed
    assert f"harrier reembed PATH COLLECTION --text-field TEXT --vector-field VECTOR --to NEW_COLLECTION " \
           f"--model-dir {out}" in printed
    assert (out / "model.safetensors").is_file() and not (out / "model.onnx").exists()
    assert cli.main(argv) == 2  # output is no longer empty
    assert "not empty" in capsys.readouterr().err
