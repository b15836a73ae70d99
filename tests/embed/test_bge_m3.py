"""BGE-M3's three heads on tiny random models, against a loop-by-loop NumPy reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from safetensors.numpy import load_file, save_file  # noqa: E402
from tiny_bert import random_bert_weights  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402

from harrierdb.embed.bert_numpy import BertConfig, NumpyBert  # noqa: E402
from harrierdb.embed.bge_m3 import BGEM3Embedding  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "red", "ball"]
XLMR_VOCAB = ["<s>", "<pad>", "</s>", "<unk>", *WORDS]
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]
TEXTS = ["the cat sat on the mat", "dog ran far far far", "red ball", "unknown words here"]
HIDDEN, COLBERT_DIM = 16, 16


def word_tokenizer(vocab: list[str], bos: str, eos: str, unk: str) -> Tokenizer:
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab.index(bos)), (eos, vocab.index(eos))])
    return tok


def write_heads(root: Path, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    save_file({"weight": rng.normal(0, 0.4, (COLBERT_DIM, HIDDEN)).astype(np.float32),
               "bias": rng.normal(0, 0.1, COLBERT_DIM).astype(np.float32)}, str(root / "colbert_linear.safetensors"))
    # A positive bias so that most (not all) tokens get a weight.
    save_file({"weight": rng.normal(0, 0.4, (1, HIDDEN)).astype(np.float32),
               "bias": np.array([0.2], dtype=np.float32)}, str(root / "sparse_linear.safetensors"))


def random_bert(vocab: int, seed: int = 0) -> tuple[dict[str, np.ndarray], BertConfig]:
    config = BertConfig(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    return random_bert_weights(HIDDEN, config.intermediate_size, config.num_hidden_layers, vocab, 32,
                               seed=seed), config


def reference(root: Path, hidden: np.ndarray, ids: list[int], unused: set[int]):
    """The three BGE-M3 heads for one text's ``(seq, hidden)`` states, written as plainly as possible."""
    colbert, sparse = load_file(str(root / "colbert_linear.safetensors")), load_file(str(root / "sparse_linear.safetensors"))
    dense = hidden[0] / np.linalg.norm(hidden[0])
    weights: dict[int, float] = {}
    for t, token in enumerate(ids):
        w = max(0.0, float(hidden[t] @ sparse["weight"][0] + sparse["bias"][0]))
        if token not in unused and w > 0 and w > weights.get(token, 0.0):
            weights[token] = w
    vecs = []
    for t in range(1, len(ids)):
        v = hidden[t] @ colbert["weight"].T + colbert["bias"]
        vecs.append(v / np.linalg.norm(v))
    return dense, weights, np.array(vecs)


def check_against_reference(model: BGEM3Embedding, root: Path, tok: Tokenizer, hidden_of, unused: set[int]):
    out = model.encode(TEXTS)
    assert out.dense is not None and out.sparse is not None and out.colbert is not None
    for k, text in enumerate(TEXTS):
        ids = tok.encode(text).ids
        dense, weights, vecs = reference(root, hidden_of(ids), ids, unused)
        np.testing.assert_allclose(out.dense[k], dense, atol=1e-5)
        assert out.sparse[k].keys() == weights.keys()
        for token, w in weights.items():
            assert out.sparse[k][token] == pytest.approx(w, abs=1e-5)
        assert out.colbert[k].shape == (len(ids) - 1, COLBERT_DIM)
        np.testing.assert_allclose(out.colbert[k], vecs, atol=1e-5)
    # Repeated tokens keep their largest weight; specials never appear.
    assert not set(out.sparse[1]) & unused and len(out.sparse[1]) <= 3
    np.testing.assert_allclose(model.encode_documents(TEXTS), out.dense, atol=1e-6)


def test_bert_shaped_model(tmp_path):
    weights, config = random_bert(len(BERT_VOCAB))
    save_file(weights, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **config.__dict__}))
    tok = word_tokenizer(BERT_VOCAB, "[CLS]", "[SEP]", "[UNK]")
    tok.save(str(tmp_path / "tokenizer.json"))
    write_heads(tmp_path)
    model = BGEM3Embedding(tmp_path, batch_size=3)
    assert model.dim == HIDDEN and model.identity.version == "float32"
    bert = NumpyBert(weights, config)

    def hidden_of(ids: list[int]) -> np.ndarray:
        a = np.array([ids])
        return bert(a, np.ones_like(a))[0]

    check_against_reference(model, tmp_path, tok, hidden_of, unused={0, 1, 2, 3})


def test_xlm_roberta_model_matches_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.XLMRobertaConfig(
        vocab_size=len(XLMR_VOCAB), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40, type_vocab_size=1, pad_token_id=1,
        bos_token_id=0, eos_token_id=2)
    xlmr = transformers.XLMRobertaModel(config, add_pooling_layer=False).eval()
    xlmr.save_pretrained(tmp_path, safe_serialization=True)
    tok = word_tokenizer(XLMR_VOCAB, "<s>", "</s>", "<unk>")
    tok.save(str(tmp_path / "tokenizer.json"))
    write_heads(tmp_path)
    model = BGEM3Embedding(tmp_path, batch_size=2)
    assert model.max_length == 38  # 40 positions less pad_token_id + 1

    def hidden_of(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            return xlmr(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()

    check_against_reference(model, tmp_path, tok, hidden_of, unused={0, 1, 2, 3})


def test_missing_heads_and_bad_directories(tmp_path):
    weights, config = random_bert(len(BERT_VOCAB))
    save_file(weights, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", **config.__dict__}))
    word_tokenizer(BERT_VOCAB, "[CLS]", "[SEP]", "[UNK]").save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "sparse_linear.pt").write_bytes(b"a pickle, never read")
    model = BGEM3Embedding(tmp_path)
    assert model.encode_queries(["the cat"]).shape == (1, HIDDEN)  # dense needs no head
    with pytest.raises(ParamError, match="sparse_linear.pt is a pickle"):
        model.encode(["the cat"])
    out = model.encode(["the cat"], sparse=False, colbert=False)
    assert out.sparse is None and out.colbert is None
    with pytest.raises(ParamError, match="not a directory"):
        BGEM3Embedding(tmp_path / "missing")
    with pytest.raises(ParamError, match="pickle"):
        BGEM3Embedding(tmp_path / "sparse_linear.pt")
    (tmp_path / "colbert_linear.safetensors").write_bytes(b"junk")
    with pytest.raises(ParamError, match="cannot read"):
        BGEM3Embedding(tmp_path)
