"""WordVectors: GloVe / word2vec files, word2vec training, and averaged text vectors."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

pytest.importorskip("gensim")

from gensim.models import KeyedVectors  # noqa: E402

from harrierdb.embed.base import EmbeddingFunction  # noqa: E402
from harrierdb.embed.words import WordVectors, sniff_format  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402

VECTORS = {
    "ice": [1.0, 0.0, 0.0, 0.5],
    "cold": [0.9, 0.1, 0.0, 0.4],
    "steam": [-1.0, 0.0, 0.2, 0.5],
    "hot": [-0.8, 0.2, 0.1, 0.4],
    "the": [0.0, 1.0, 0.0, 0.0],
}


@pytest.fixture
def glove(tmp_path):
    path = tmp_path / "tiny.glove.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in VECTORS.items()), encoding="utf-8")
    return path


def write_word2vec(path, binary):
    kv = KeyedVectors(vector_size=4)
    kv.add_vectors(list(VECTORS), np.array(list(VECTORS.values()), dtype=np.float32))
    kv.save_word2vec_format(str(path), binary=binary)
    return path


def test_glove_file(glove):
    wv = WordVectors.load(glove)
    assert isinstance(wv, EmbeddingFunction) and sniff_format(glove) == "glove"
    assert len(wv) == 5 and wv.dim == 4 and "ice" in wv and "fire" not in wv
    np.testing.assert_array_equal(wv["ice"], np.float32(VECTORS["ice"]))
    assert wv["ice"].dtype == np.float32
    ident = wv.identity
    assert ident.weights_sha256 == hashlib.sha256(glove.read_bytes()).hexdigest()
    assert (ident.name, ident.version, ident.dim) == ("tiny.glove.txt", "glove", 4)
    assert wv.most_similar("ice", topn=1)[0][0] == "cold"


@pytest.mark.parametrize("binary", [True, False])
def test_word2vec_files(tmp_path, binary, glove):
    path = write_word2vec(tmp_path / ("w2v.bin" if binary else "w2v.txt"), binary)
    assert sniff_format(path) == ("word2vec-binary" if binary else "word2vec")
    wv = WordVectors.load(path)
    assert wv.identity.version == sniff_format(path)
    for word, vec in VECTORS.items():
        np.testing.assert_allclose(wv[word], vec, rtol=1e-6)
    np.testing.assert_allclose(wv.encode_documents(["ice cold"]), WordVectors.load(glove).encode_documents(["ice cold"]),
                               rtol=1e-6)


def test_mean_of_word_vectors(glove):
    raw = WordVectors.load(glove, normalize=False)
    out = raw.encode_documents(["Ice, cold!", "hot steam", "ice"])
    assert out.shape == (3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], (np.float32(VECTORS["ice"]) + VECTORS["cold"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[2], VECTORS["ice"])
    unit = WordVectors.load(glove).encode_queries(["Ice, cold!"])
    np.testing.assert_allclose(unit[0], out[0] / np.linalg.norm(out[0]), rtol=1e-6)
    assert WordVectors.load(glove).encode_documents([]).shape == (0, 4)


def test_oov_handling(glove):
    skip = WordVectors.load(glove, normalize=False)
    np.testing.assert_allclose(skip.encode_documents(["ice zebra"])[0], VECTORS["ice"])
    zero = WordVectors.load(glove, normalize=False, oov="zero")
    np.testing.assert_allclose(zero.encode_documents(["ice zebra"])[0], np.float32(VECTORS["ice"]) / 2)
    assert zero.identity.version == "glove+oov-zero"
    error = WordVectors.load(glove, oov="error")
    with pytest.raises(ParamError, match="'zebra'"):
        error.encode_documents(["ice", "ice zebra"])
    with pytest.raises(ParamError, match="no words"):
        error.encode_documents([""])
    with pytest.warns(RuntimeWarning, match="all zeros"):
        all_oov = skip.encode_documents(["zebra giraffe"])
    assert not all_oov.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not zero.encode_documents(["zebra"]).any()
    with pytest.raises(ParamError, match="oov"):
        WordVectors.load(glove, oov="ignore")


def test_idf_weighting(glove):
    corpus = ["the ice", "the steam", "the cold", "the hot ice"]
    wv = WordVectors.load(glove, normalize=False).fit_idf(corpus)
    idf_the, idf_ice = np.log(5 / 5) + 1, np.log(5 / 3) + 1
    expected = (idf_the * np.float32(VECTORS["the"]) + idf_ice * np.float32(VECTORS["ice"])) / (idf_the + idf_ice)
    np.testing.assert_allclose(wv.encode_documents(["the ice"])[0], expected, rtol=1e-6)
    plain = WordVectors.load(glove, normalize=False)
    assert wv.identity.version == "glove+idf"
    assert wv.identity.weights_sha256 != plain.identity.weights_sha256
    custom = WordVectors.load(glove, normalize=False, idf={"ice": 3.0, "the": 1.0})
    np.testing.assert_allclose(custom.encode_documents(["the ice"])[0],
                               (np.float32(VECTORS["the"]) + 3 * np.float32(VECTORS["ice"])) / 4, rtol=1e-6)
    with pytest.raises(ParamError):
        plain.set_idf({"ice": -1.0})


def test_train_is_deterministic_and_round_trips(tmp_path):
    sentences = ["the cat sat on the mat", "the dog sat on the log", "cats and dogs are pets",
                 ["ice", "is", "cold"], "steam is hot"] * 20
    a = WordVectors.train(sentences, vector_size=16, epochs=3, seed=7)
    b = WordVectors.train(sentences, vector_size=16, epochs=3, seed=7)
    assert a.dim == 16 and "cat" in a and "ice" in a
    np.testing.assert_array_equal(a["cat"], b["cat"])
    assert a.identity == b.identity and a.identity.version == "trained"
    assert WordVectors.train(sentences, vector_size=16, epochs=3, seed=8).identity != a.identity
    a.save(tmp_path / "trained.bin")
    loaded = WordVectors.load(tmp_path / "trained.bin")
    assert loaded.identity.version == "word2vec-binary"
    np.testing.assert_allclose(loaded.encode_documents(["the cat"]), a.encode_documents(["the cat"]), rtol=1e-6)


def test_validation(tmp_path, glove):
    wv = WordVectors.load(glove)
    with pytest.raises(ParamError, match="not in the vocabulary"):
        wv["zebra"]
    with pytest.raises(ParamError, match="wrap it in a list"):
        wv.encode_documents("ice")
    with pytest.raises(ParamError, match="pickle"):
        WordVectors.load(tmp_path / "vectors.pkl")
    with pytest.raises(ParamError, match="does not exist"):
        WordVectors.load(tmp_path / "missing.txt")
    with pytest.raises(ParamError, match="format"):
        WordVectors.load(glove, format="fasttext")
    with pytest.raises(ParamError, match="no words"):
        WordVectors.train(["", "..."], vector_size=8)
    with pytest.raises(ParamError, match="vector_size"):
        WordVectors.train(["a b"], vector_size=0)
    bad = tmp_path / "bad.txt"
    bad.write_text("2 4\nice 1 2\n", encoding="utf-8")
    with pytest.raises(ParamError, match="cannot read"):
        WordVectors.load(bad, format="word2vec")
