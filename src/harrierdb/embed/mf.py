"""Matrix factorization: user and item vectors whose dot products predict preferences.

Both models learn from ``(user, item, value)`` triples with arbitrary user and item ids
(ints or strings, mapped to rows internally) by alternating least squares (ALS):

* :class:`ExplicitALS` fits star ratings. It models ``r ~ mu + b_u + b_i + p_u . q_i``
  and folds the biases into the vectors, ``user = [p_u, mu + b_u, 1]`` and
  ``item = [q_i, 1, b_i]``, so ``user . item`` *is* the predicted rating and an
  inner-product (IP) search over item vectors ranks items by it. The vectors have
  ``factors + 2`` components.
* :class:`ImplicitALS` fits implicit feedback (views, clicks, or ratings read as "seen"),
  after Hu, Koren & Volinsky (2008): every user-item pair has preference 1 if observed
  and 0 otherwise, weighted by confidence ``1 + alpha * value``; ``user . item`` is a
  preference score (not a rating). It uses the ``implicit`` package when installed
  (conjugate gradient, multithreaded) and an exact NumPy solver otherwise.

Fitted models are saved to a directory as ``model.json`` + ``vectors.npz`` (no pickles).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from harrierdb.errors import ParamError

FORMAT_VERSION = 1
#: Floats in one gathered ``(rows, width, k)`` block of the NumPy solver (32 MB of float64).
_CHUNK_FLOATS = 1 << 22


class MatrixFactorization:
    """What both models share: id mapping, prediction, recommendation, save and load."""

    kind: ClassVar[str] = ""
    #: How repeated (user, item) pairs combine: averaged (ratings) or summed (counts).
    average_duplicates: ClassVar[bool] = False

    def __init__(self, factors: int = 32, regularization: float = 0.1, iterations: int = 15,
                 seed: int | None = 0):
        _check_int("factors", factors, 1)
        _check_int("iterations", iterations, 1)
        if isinstance(regularization, bool) or not isinstance(regularization, (int, float)) \
                or not regularization > 0:
            raise ParamError(f"regularization must be a number > 0, got {regularization!r}")
        if seed is not None:
            _check_int("seed", seed, 0)
        self.factors = factors
        self.regularization = float(regularization)
        self.iterations = iterations
        self.seed = seed
        self._fitted: dict[str, np.ndarray] | None = None

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, users: Any, items: Any, ratings: Any = None) -> MatrixFactorization:
        """Learn vectors from parallel sequences; ``ratings`` defaults to all ones.

        Repeated ``(user, item)`` pairs are averaged by :class:`ExplicitALS` and summed by
        :class:`ImplicitALS`. Returns ``self``.
        """
        users, items = _check_ids("users", users), _check_ids("items", items)
        if len(users) != len(items):
            raise ParamError(f"users and items differ in length: {len(users)} != {len(items)}")
        if len(users) == 0:
            raise ParamError("cannot fit on no ratings")
        values = np.ones(len(users)) if ratings is None else np.asarray(ratings, dtype=np.float64)
        if values.shape != (len(users),):
            raise ParamError(f"ratings must be a 1-d sequence of {len(users)} numbers, got shape {values.shape}")
        if not np.isfinite(values).all():
            raise ParamError("ratings must be finite numbers")
        user_ids, rows = np.unique(users, return_inverse=True)
        item_ids, cols = np.unique(items, return_inverse=True)
        matrix = sp.csr_matrix((values, (rows, cols)), shape=(len(user_ids), len(item_ids)))
        matrix.sum_duplicates()
        if self.average_duplicates:
            counts = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=matrix.shape)
            counts.sum_duplicates()  # the same canonical layout as matrix
            matrix.data /= counts.data
        user_vectors, item_vectors, default_user, default_item = self._factorize(matrix)
        self._fitted = {
            "user_ids": user_ids, "item_ids": item_ids,
            "user_vectors": user_vectors.astype(np.float32), "item_vectors": item_vectors.astype(np.float32),
            "default_user": default_user.astype(np.float32), "default_item": default_item.astype(np.float32),
            "seen_indptr": matrix.indptr.astype(np.int64), "seen_indices": matrix.indices.astype(np.int64),
        }
        return self

    def _factorize(self, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """User vectors, item vectors, and the vectors that stand in for unknown ids."""
        raise NotImplementedError

    # -- fitted state ----------------------------------------------------------------------

    @property
    def user_vectors(self) -> np.ndarray:
        """``(n_users, dim)`` float32, row ``j`` for ``user_ids[j]``."""
        return self._state("user_vectors")

    @property
    def item_vectors(self) -> np.ndarray:
        """``(n_items, dim)`` float32, row ``j`` for ``item_ids[j]``."""
        return self._state("item_vectors")

    @property
    def user_ids(self) -> np.ndarray:
        """The distinct user ids seen by :meth:`fit`, sorted."""
        return self._state("user_ids")

    @property
    def item_ids(self) -> np.ndarray:
        """The distinct item ids seen by :meth:`fit`, sorted."""
        return self._state("item_ids")

    @property
    def dim(self) -> int:
        return int(self.item_vectors.shape[1])

    def _state(self, name: str) -> np.ndarray:
        if self._fitted is None:
            raise ParamError(f"{type(self).__name__} is not fitted yet: call fit() or load() first")
        return self._fitted[name]

    # -- using the vectors -----------------------------------------------------------------

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """``user . item`` for each pair, float32. Unknown ids get a neutral vector.

        For :class:`ExplicitALS` an unknown user is rated ``mu + b_i``, an unknown item
        ``mu + b_u``; for :class:`ImplicitALS` a pair with an unknown id scores 0.
        """
        users, items = _check_ids("users", users), _check_ids("items", items)
        if len(users) != len(items):
            raise ParamError(f"users and items differ in length: {len(users)} != {len(items)}")
        u = _rows_or_default(self.user_ids, users, self.user_vectors, self._state("default_user"))
        i = _rows_or_default(self.item_ids, items, self.item_vectors, self._state("default_item"))
        return np.einsum("ij,ij->i", u, i).astype(np.float32)

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for a known user: ``(item_ids, scores)``, best first.

        ``exclude_seen`` leaves out the items the user had in the training data.
        """
        _check_int("k", k, 1)
        row = _lookup(self.user_ids, _check_ids("user_id", [user_id]))[0]
        if row < 0:
            raise ParamError(f"unknown user {user_id!r}: recommend() needs a user seen by fit()")
        scores = self.item_vectors @ self.user_vectors[row]
        if exclude_seen:
            indptr = self._state("seen_indptr")
            scores[self._state("seen_indices")[indptr[row]:indptr[row + 1]]] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        return self.item_ids[top], scores[top].astype(np.float32)

    # -- persistence -----------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {"factors": self.factors, "regularization": self.regularization,
                "iterations": self.iterations, "seed": self.seed}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``model.json`` and ``vectors.npz`` into directory ``path`` (created if needed)."""
        self._state("user_ids")
        assert self._fitted is not None
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        np.savez(root / "vectors.npz", **self._fitted)
        meta = {"format_version": FORMAT_VERSION, "model": self.kind, "params": self.params(),
                "dim": self.dim, "n_users": len(self.user_ids), "n_items": len(self.item_ids)}
        (root / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MatrixFactorization:
        """Read a model written by :meth:`save`; ``MatrixFactorization.load`` reads either kind."""
        root = Path(path)
        try:
            meta = json.loads((root / "model.json").read_text(encoding="utf-8"))
            with np.load(root / "vectors.npz", allow_pickle=False) as z:
                fitted = {name: z[name] for name in z.files}
        except (OSError, ValueError) as exc:
            raise ParamError(f"cannot read a saved model from {str(root)!r}: {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise ParamError(f"{str(root)!r} has model format {meta.get('format_version')!r}; "
                             f"this version reads {FORMAT_VERSION}")
        kinds = {sub.kind: sub for sub in (ExplicitALS, ImplicitALS)}
        target = kinds.get(meta.get("model"))
        if target is None or (cls is not MatrixFactorization and target is not cls):
            raise ParamError(f"{str(root)!r} holds a {meta.get('model')!r} model, not {cls.__name__}")
        model = target(**meta["params"])
        model._fitted = fitted
        return model


class ExplicitALS(MatrixFactorization):
    """Biased matrix factorization of explicit ratings by ALS.

    Each step solves, for every user (then every item), the ridge regression
    ``min sum_i (r_ui - mu - b_i - [p_u, b_u] . [q_i, 1])^2 + reg * n_u * |[p_u, b_u]|^2``,
    the weighted-lambda regularization of Zhou et al. (2008): ``n_u`` is the user's
    number of ratings. See the module docstring for the vector layout (dim = factors + 2).
    """

    kind = "explicit_als"
    average_duplicates = True

    @property
    def global_mean(self) -> float:
        """``mu``, the mean training rating."""
        return float(self._state("default_user")[-2])

    def _factorize(self, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        k, reg = self.factors, self.regularization
        by_user, by_item = matrix, matrix.T.tocsr()
        n_users, n_items = matrix.shape
        mu = float(matrix.data.mean())
        rng = np.random.default_rng(self.seed)
        p = rng.normal(0, 0.1, (n_users, k))
        q = rng.normal(0, 0.1, (n_items, k))
        b_user, b_item = np.zeros(n_users), np.zeros(n_items)
        for _ in range(self.iterations):
            sol = ridge_rows(by_user, np.hstack([q, np.ones((n_items, 1))]),
                             by_user.data - mu - b_item[by_user.indices], reg * np.diff(by_user.indptr))
            p, b_user = sol[:, :k], sol[:, k]
            sol = ridge_rows(by_item, np.hstack([p, np.ones((n_users, 1))]),
                             by_item.data - mu - b_user[by_item.indices], reg * np.diff(by_item.indptr))
            q, b_item = sol[:, :k], sol[:, k]
        users = np.hstack([p, (mu + b_user)[:, None], np.ones((n_users, 1))])
        items = np.hstack([q, np.ones((n_items, 1)), b_item[:, None]])
        default_user = np.concatenate([np.zeros(k), [mu, 1.0]])
        default_item = np.concatenate([np.zeros(k), [1.0, 0.0]])
        return users, items, default_user, default_item


class ImplicitALS(MatrixFactorization):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008).

    Minimizes ``sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (|x_u|^2 + |y_i|^2)`` over *all*
    pairs, with ``p_ui = 1`` for observed pairs (0 otherwise) and confidence
    ``c_ui = 1 + alpha * value``. ``backend`` is ``"implicit"`` (the ``implicit``
    package's conjugate-gradient solver), ``"numpy"`` (exact solves) or ``"auto"``
    (``implicit`` when installed).
    """

    kind = "implicit_als"
    BACKENDS = ("auto", "implicit", "numpy")

    def __init__(self, factors: int = 32, regularization: float = 1.0, iterations: int = 15,
                 seed: int | None = 0, alpha: float = 4.0, backend: str = "auto"):
        super().__init__(factors, regularization, iterations, seed)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ParamError(f"alpha must be a number > 0, got {alpha!r}")
        if backend not in self.BACKENDS:
            raise ParamError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        self.alpha = float(alpha)
        self.backend = backend

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": self.alpha, "backend": self.backend}

    def _factorize(self, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if (matrix.data < 0).any():
            raise ParamError("implicit feedback values must be >= 0 (they scale confidence)")
        confidence = matrix.copy()
        confidence.data = 1.0 + self.alpha * confidence.data
        backend = self.backend
        if backend == "auto":
            backend = "implicit" if _has_implicit() else "numpy"
        if backend == "implicit":
            users, items = self._fit_implicit(confidence)
        else:
            users, items = self._fit_numpy(confidence)
        zero = np.zeros(self.factors)
        return users, items, zero, zero

    def _fit_implicit(self, confidence: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        try:
            from implicit.cpu.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits
        except ImportError as exc:
            raise ParamError("backend='implicit' needs the implicit package: pip install implicit") from exc
        # implicit runs its own threads and warns when BLAS would nest more; and it reads each
        # stored value as the confidence c_ui of a positive pair when its alpha is 1.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                            alpha=1.0, iterations=self.iterations, random_state=self.seed)
            model.fit(confidence.astype(np.float32), show_progress=False)
        return np.asarray(model.user_factors), np.asarray(model.item_factors)

    def _fit_numpy(self, confidence: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        by_user, by_item = confidence, confidence.T.tocsr()
        n_users, n_items = confidence.shape
        rng = np.random.default_rng(self.seed)
        x = rng.normal(0, 0.01, (n_users, self.factors))
        y = rng.normal(0, 0.01, (n_items, self.factors))
        for _ in range(self.iterations):
            x = _implicit_step(by_user, y, self.regularization)
            y = _implicit_step(by_item, x, self.regularization)
        return x, y


def _implicit_step(matrix: sp.csr_matrix, fixed: np.ndarray, reg: float) -> np.ndarray:
    """Solve ``(Y'Y + Y'(C_u - I)Y + reg I) x_u = Y' C_u p_u`` for every row ``u``.

    Only observed pairs enter the sums beyond ``Y'Y``, so each row costs its count.
    """
    # p_ui = 1 where observed, so the right-hand side is sum_i c_ui y_i; rows with no
    # observations have the all-zero solution, which ridge_rows leaves them.
    return ridge_rows(matrix, fixed, matrix.data, np.full(matrix.shape[0], reg),
                      weights=matrix.data - 1.0, gram=fixed.T @ fixed)


def ridge_rows(matrix: sp.csr_matrix, fixed: np.ndarray, targets: np.ndarray, reg: np.ndarray,
               weights: np.ndarray | None = None, gram: np.ndarray | None = None) -> np.ndarray:
    """Solve one ridge regression per row of a sparse matrix, in batches.

    For row ``r`` with entries at columns ``j`` the solution ``theta_r`` satisfies
    ``(gram + sum_j w_j f_j f_j' + reg_r I) theta_r = sum_j t_j f_j`` where ``f_j`` is
    ``fixed[j]``, ``t`` the ``targets`` and ``w`` the ``weights`` (default 1), both
    aligned with ``matrix.data``. Rows without entries get zeros.

    Rows are grouped by entry count (within a factor of 2) and each group's entries are
    gathered into a zero-padded ``(rows, longest, k)`` block, so that the normal equations
    come from batched matrix products rather than one outer product per entry.
    """
    indptr, indices = matrix.indptr, matrix.indices
    counts = np.diff(indptr)
    n_rows, k = matrix.shape[0], fixed.shape[1]
    w_all = np.ones(len(indices)) if weights is None else weights
    out = np.zeros((n_rows, k))
    eye = np.eye(k)
    nonempty = np.flatnonzero(counts > 0)
    groups = np.floor(np.log2(counts[nonempty])).astype(np.int64)
    for g in np.unique(groups):
        rows = nonempty[groups == g]
        width = int(counts[rows].max())
        per_chunk = max(1, _CHUNK_FLOATS // (width * k))
        for chunk in np.array_split(rows, -(-len(rows) // per_chunk)):
            slot = np.arange(width)
            valid = slot < counts[chunk][:, None]                        # (rows, width)
            pos = np.where(valid, indptr[chunk][:, None] + slot, 0)
            f = fixed[indices[pos]] * valid[..., None]                   # (rows, width, k)
            a = np.matmul(f.transpose(0, 2, 1), f * w_all[pos][..., None])
            b = np.einsum("rwk,rw->rk", f, targets[pos] * valid)
            a += reg[chunk, None, None] * eye
            if gram is not None:
                a += gram
            out[chunk] = np.linalg.solve(a, b[..., None])[..., 0]
    return out


def _has_implicit() -> bool:
    import importlib.util

    return importlib.util.find_spec("implicit") is not None


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParamError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_ids(name: str, ids: Any) -> np.ndarray:
    """Ids as a 1-d NumPy array of ints or strings."""
    if isinstance(ids, (str, bytes)):
        raise ParamError(f"{name} must be a sequence of ids, got a single string {ids!r}")
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ParamError(f"{name} must be a 1-d sequence of ids, got shape {array.shape}")
    if len(array) and array.dtype.kind not in "iuU":
        raise ParamError(f"{name} must be ints or strings (all of one kind), got dtype {array.dtype}")
    return array


def _lookup(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row of each id in ``sorted_ids``, or -1 where it is absent."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    if (sorted_ids.dtype.kind == "U") != (ids.dtype.kind == "U"):
        return np.full(len(ids), -1, dtype=np.int64)  # strings never match ints
    pos = np.searchsorted(sorted_ids, ids)
    pos = np.minimum(pos, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def _rows_or_default(sorted_ids: np.ndarray, ids: np.ndarray, vectors: np.ndarray,
                     default: np.ndarray) -> np.ndarray:
    rows = _lookup(sorted_ids, ids)
    out = np.where((rows >= 0)[:, None], vectors[np.maximum(rows, 0)], default)
    return out.astype(np.float64)
