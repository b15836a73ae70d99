"""``WordVectors``: static word embeddings (GloVe, word2vec) and their text averages.

Vectors load from GloVe text files (no header) or word2vec text/binary files through
gensim's ``KeyedVectors.load_word2vec_format`` (never gensim's pickle-based ``load``), or
are trained on a corpus with gensim's ``Word2Vec``. ``wv["ice"]`` is a word's vector; a
text's vector is the (optionally IDF-weighted) mean of its words' vectors::

    wv = WordVectors.load("glove.6B.50d.txt")
    wv["ice"], wv.most_similar("ice", topn=5)
    wv.fit_idf(corpus).encode_documents(["cold ice", "hot steam"])

Texts are split into words by an :class:`~harrierdb.analyzer.Analyzer` (by default the
standard tokenizer, lowercased, no stemming: GloVe's vocabulary is lowercase).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.analyzer import Analyzer
from harrierdb.embed.base import EmbeddingFunction, ModelIdentity, check_texts
from harrierdb.embed.sparse import make_analyzer
from harrierdb.embed.weights import sha256_file
from harrierdb.errors import ParamError

FORMATS = ("auto", "glove", "word2vec", "word2vec-binary")
OOV_MODES = ("skip", "zero", "error")
#: Pickled files, gensim's native ``.model``/``.kv`` included: never loaded (``.bin`` is
#: word2vec's binary format, which is parsed, not unpickled).
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".model", ".kv")


class WordVectors(EmbeddingFunction):
    """Word vectors plus a text encoder that averages them.

    ``oov`` says what an out-of-vocabulary word does: ``"skip"`` leaves it out of the
    mean, ``"zero"`` counts it as a zero vector, ``"error"`` raises :class:`ParamError`
    naming it. A text with no known word becomes a zero vector (with a warning under
    ``"skip"``; an error under ``"error"``). ``idf`` weights each word in the mean
    (see :meth:`fit_idf`); ``normalize`` scales text vectors to unit length.
    """

    def __init__(self, keyed_vectors: Any, *, name: str, version: str, weights_sha256: str,
                 oov: str = "skip", idf: Mapping[str, float] | None = None, normalize: bool = True,
                 analyzer: Analyzer | dict[str, Any] | None = None):
        if oov not in OOV_MODES:
            raise ParamError(f"oov must be one of {OOV_MODES}, got {oov!r}")
        if not isinstance(normalize, bool):
            raise ParamError(f"normalize must be a bool, got {normalize!r}")
        self.kv = keyed_vectors
        if len(self.kv.index_to_key) == 0:
            raise ParamError("the word vectors have an empty vocabulary")
        self.oov = oov
        self.normalize = normalize
        self.analyzer = make_analyzer(analyzer)
        self._name, self._version, self._file_sha = name, version, weights_sha256
        self._vectors = np.asarray(self.kv.vectors, dtype=np.float32)
        self.idf: dict[str, float] | None = None
        self._idf_default = 1.0
        if idf is not None:
            self.set_idf(idf)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], format: str = "auto", **kwargs: Any) -> WordVectors:
        """Vectors from a GloVe or word2vec file; ``format="auto"`` tells them apart.

        ``kwargs`` go to the constructor (``oov``, ``idf``, ``normalize``, ``analyzer``).
        """
        from gensim.models import KeyedVectors

        file = Path(path).expanduser()
        if file.suffix.lower() in PICKLE_SUFFIXES:
            raise ParamError(f"refusing to load {str(file)!r}: {file.suffix} files are pickles (gensim's "
                             "own save() format), and unpickling can run arbitrary code. Export them "
                             "with KeyedVectors.save_word2vec_format() and load that file")
        if not file.is_file():
            raise ParamError(f"word vector file {str(file)!r} does not exist")
        if format not in FORMATS:
            raise ParamError(f"format must be one of {FORMATS}, got {format!r}")
        if format == "auto":
            format = sniff_format(file)
        try:
            kv = KeyedVectors.load_word2vec_format(
                str(file), binary=format == "word2vec-binary", no_header=format == "glove")
        except (ValueError, EOFError, UnicodeDecodeError) as exc:
            raise ParamError(f"cannot read {str(file)!r} as a {format} file: {exc}") from exc
        return cls(kv, name=file.name, version=format, weights_sha256=sha256_file(file), **kwargs)

    @classmethod
    def train(cls, corpus_sentences: Iterable[str | Sequence[str]], vector_size: int = 100, *,
              window: int = 5, min_count: int = 1, epochs: int = 5, sg: int = 0, seed: int = 1,
              workers: int = 1, analyzer: Analyzer | dict[str, Any] | None = None,
              **kwargs: Any) -> WordVectors:
        """Train word2vec on sentences (texts, analyzed; or lists of tokens, used as given).

        ``workers=1`` with a fixed ``seed`` is reproducible within one Python version;
        ``kwargs`` go to the constructor.
        """
        from gensim.models import Word2Vec

        analyzer = make_analyzer(analyzer)
        sentences = []
        for i, s in enumerate(corpus_sentences):
            if isinstance(s, str):
                sentences.append(analyzer.analyze(s))
            elif isinstance(s, Sequence) and all(isinstance(t, str) for t in s):
                sentences.append(list(s))
            else:
                raise ParamError(f"sentence {i} must be a string or a list of tokens, got {s!r:.60}")
        for label, value, low in (("vector_size", vector_size, 1), ("window", window, 1),
                                  ("min_count", min_count, 1), ("epochs", epochs, 1),
                                  ("workers", workers, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ParamError(f"{label} must be an int >= {low}, got {value!r}")
        if not any(sentences):
            raise ParamError("cannot train word vectors: the corpus has no words")
        model = Word2Vec(sentences, vector_size=vector_size, window=window, min_count=min_count,
                         epochs=epochs, sg=sg, seed=seed, workers=workers)
        if len(model.wv.index_to_key) == 0:
            raise ParamError(f"no word occurs min_count={min_count} times in the corpus")
        sha = _vectors_sha256(model.wv.index_to_key, model.wv.vectors)
        return cls(model.wv, name="word2vec", version="trained", weights_sha256=sha,
                   analyzer=analyzer, **kwargs)

    def save(self, path: str | os.PathLike[str], binary: bool = True) -> None:
        """Write the vectors in word2vec format (binary by default); :meth:`load` reads it."""
        self.kv.save_word2vec_format(str(path), binary=binary)

    # -- words ---------------------------------------------------------------------------
    def __getitem__(self, word: str) -> np.ndarray:
        """The vector of ``word``, float32 ``(dim,)``."""
        index = self.kv.key_to_index.get(word) if isinstance(word, str) else None
        if index is None:
            raise ParamError(f"word {word!r} is not in the vocabulary of {self._name!r}")
        return self._vectors[index]

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self.kv.key_to_index

    def __len__(self) -> int:
        return len(self.kv.index_to_key)

    @property
    def words(self) -> list[str]:
        return list(self.kv.index_to_key)

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        """The ``topn`` words nearest to ``word`` by cosine similarity."""
        self[word]  # raises ParamError for an unknown word
        return [(w, float(s)) for w, s in self.kv.most_similar(word, topn=topn)]

    # -- IDF -----------------------------------------------------------------------------
    def fit_idf(self, corpus: Sequence[str]) -> WordVectors:
        """Weight words by smoothed IDF ``ln((1 + N) / (1 + df)) + 1`` over ``corpus``."""
        texts = check_texts(corpus)
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(self.analyzer.analyze(text)))
        n = len(texts)
        self.set_idf({w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()},
                     default=math.log(1 + n) + 1.0)
        return self

    def set_idf(self, idf: Mapping[str, float], default: float | None = None) -> None:
        """Use ``idf[word]`` as weights; words it lacks get ``default`` (its maximum if None)."""
        if not isinstance(idf, Mapping) or not idf:
            raise ParamError(f"idf must be a non-empty mapping of word -> weight, got {idf!r:.80}")
        weights = {str(w): float(v) for w, v in idf.items()}
        if any(not math.isfinite(v) or v < 0 for v in weights.values()):
            raise ParamError("idf weights must be finite and >= 0")
        self.idf = weights
        self._idf_default = max(weights.values()) if default is None else float(default)

    # -- EmbeddingFunction -----------------------------------------------------------------
    @property
    def identity(self) -> ModelIdentity:
        version, sha = self._version, self._file_sha
        if self.oov == "zero":
            version += "+oov-zero"
        if self.idf is not None:
            version += "+idf"
            h = hashlib.sha256(sha.encode())
            for word in sorted(self.idf):
                h.update(f"\0{word}\0{self.idf[word]!r}".encode())
            h.update(repr(self._idf_default).encode())
            sha = h.hexdigest()
        return ModelIdentity(name=self._name, version=version, dim=int(self._vectors.shape[1]),
                             normalized=self.normalize, weights_sha256=sha)

    def encode_documents(self, items: Sequence[str]) -> np.ndarray:
        texts = check_texts(items)
        out = np.zeros((len(texts), self._vectors.shape[1]), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._mean(text, i)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, 1e-12)
        return out

    def encode_queries(self, items: Sequence[str]) -> np.ndarray:
        return self.encode_documents(items)

    def _mean(self, text: str, row: int) -> np.ndarray:
        """The weighted mean of the known words' vectors; OOV words per ``self.oov``."""
        indices: list[int] = []
        weights: list[float] = []
        oov_weight = 0.0  # under "zero", OOV words count in the denominator only
        for word in self.analyzer.analyze(text):
            index = self.kv.key_to_index.get(word)
            if index is None:
                if self.oov == "error":
                    raise ParamError(f"text {row} ({text[:60]!r}): word {word!r} is not in the "
                                     f"vocabulary of {self._name!r}; use oov='skip' or 'zero'")
                if self.oov == "zero":
                    oov_weight += self._weight(word)
                continue
            indices.append(index)
            weights.append(self._weight(word))
        if not indices:
            if self.oov == "error":
                raise ParamError(f"text {row} ({text[:60]!r}) has no words to embed")
            if self.oov == "skip":
                warnings.warn(f"text {row} ({text[:60]!r}) has no word in the vocabulary of "
                              f"{self._name!r}; its vector is all zeros", RuntimeWarning, stacklevel=4)
            return np.zeros(self._vectors.shape[1], dtype=np.float32)
        w = np.asarray(weights, dtype=np.float64)
        total = w.sum() + oov_weight
        if total <= 0:
            return np.zeros(self._vectors.shape[1], dtype=np.float32)
        return ((w[:, None] * self._vectors[indices]).sum(axis=0) / total).astype(np.float32)

    def _weight(self, word: str) -> float:
        return 1.0 if self.idf is None else self.idf.get(word, self._idf_default)

    def __repr__(self) -> str:
        return (f"WordVectors(name={self._name!r}, format={self._version!r}, words={len(self)}, "
                f"dim={self._vectors.shape[1]}, oov={self.oov!r}, idf={self.idf is not None})")


def sniff_format(path: Path) -> str:
    """``"glove"`` without a ``count dim`` header; else ``"word2vec"`` if the first vector
    line is text (a word and ``dim`` numbers), else ``"word2vec-binary"``."""
    with open(path, "rb") as f:
        head = f.readline(256).split()
        first = f.readline(1 << 16).split()
    if len(head) != 2 or not all(p.isdigit() for p in head):
        return "glove"
    dim = int(head[1])
    if len(first) == dim + 1:
        try:
            [float(x) for x in first[1:]]
            return "word2vec"
        except ValueError:
            pass
    return "word2vec-binary"


def _vectors_sha256(words: list[str], vectors: np.ndarray) -> str:
    h = hashlib.sha256()
    for word in words:
        h.update(word.encode("utf-8") + b"\n")
    h.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    return h.hexdigest()
