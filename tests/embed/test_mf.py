"""Matrix factorization: exact on synthetic low-rank data, useful on MovieLens."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from harrierdb.embed.mf import ExplicitALS, ImplicitALS, MatrixFactorization  # noqa: E402
from harrierdb.errors import ParamError  # noqa: E402


def low_rank_ratings(n_users: int = 60, n_items: int = 40, rank: int = 3, density: float = 0.6,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Triples sampled from ``3 + U V'`` (string user ids, int item ids) and the full matrix."""
    rng = np.random.default_rng(seed)
    full = 3 + rng.normal(0, 0.7, (n_users, rank)) @ rng.normal(0, 0.7, (rank, n_items))
    mask = rng.random((n_users, n_items)) < density
    rows, cols = np.nonzero(mask)
    users = np.array([f"u{r}" for r in rows])
    return users, cols * 10, full[rows, cols], full


def test_explicit_recovers_a_low_rank_matrix():
    users, items, ratings, full = low_rank_ratings()
    model = ExplicitALS(factors=3, regularization=1e-4, iterations=30, seed=1).fit(users, items, ratings)
    assert model.dim == 5  # factors + the two bias columns
    # Every cell, observed or not, is predicted from the vectors alone.
    all_users = np.repeat([f"u{r}" for r in range(full.shape[0])], full.shape[1])
    all_items = np.tile(np.arange(full.shape[1]) * 10, full.shape[0])
    pred = model.predict(all_users, all_items).reshape(full.shape)
    assert np.sqrt(np.mean((pred - full) ** 2)) < 0.02
    # user . item is the prediction: the vectors are usable in an IP index as they are.
    row = np.searchsorted(model.user_ids, "u7")
    np.testing.assert_allclose(model.user_vectors[row] @ model.item_vectors.T, pred[7], atol=1e-4)
    assert model.global_mean == pytest.approx(ratings.mean(), abs=1e-5)


def test_unknown_ids_fall_back_to_biases():
    users, items, ratings, _ = low_rank_ratings()
    model = ExplicitALS(factors=2, iterations=3).fit(users, items, ratings)
    mu = model.global_mean
    both_unknown, unknown_user = model.predict(["nobody", "nobody"], [-1, 10])
    assert both_unknown == pytest.approx(mu, abs=1e-5)
    item_bias = model.item_vectors[np.searchsorted(model.item_ids, 10), -1]
    assert unknown_user == pytest.approx(mu + item_bias, abs=1e-5)
    # Ints never match string ids.
    assert model.predict([7], [10])[0] == pytest.approx(mu + item_bias, abs=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "implicit"])
def test_implicit_ranks_a_users_block_first(backend):
    if backend == "implicit":
        pytest.importorskip("implicit")
    # Two communities: users 0-29 like items 0-19, users 30-59 like items 20-39.
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(60):
        block = np.arange(20) + (0 if u < 30 else 20)
        chosen = rng.choice(block, 10, replace=False)
        users += [u] * 10
        items += chosen.tolist()
    model = ImplicitALS(factors=4, regularization=0.1, iterations=10, backend=backend).fit(users, items)
    for u in (0, 45):
        recs, scores = model.recommend(u, k=5)
        block = range(0, 20) if u < 30 else range(20, 40)
        assert all(i in block for i in recs), (u, recs)
        assert np.all(np.diff(scores) <= 0)
        seen = {i for uu, i in zip(users, items) if uu == u}
        assert not seen & set(recs.tolist())
    everything, _ = model.recommend(0, k=100, exclude_seen=False)
    assert len(everything) == 40


def test_numpy_backend_matches_the_closed_form_user_step():
    """One half-step of the NumPy solver equals the textbook HKV formula, row by row."""
    import scipy.sparse as sp

    from harrierdb.embed.mf import _implicit_step

    rng = np.random.default_rng(3)
    dense = np.where(rng.random((12, 9)) < 0.4, 1 + 5 * rng.random((12, 9)), 0.0)
    dense[9:] = 0.0  # users without observations get the all-zero solution
    conf = sp.csr_matrix(dense)
    y = rng.normal(size=(9, 4))
    got = _implicit_step(conf, y, 0.3)
    for u in range(12):
        c = np.where(dense[u] > 0, dense[u], 1.0)
        p = (dense[u] > 0).astype(float)
        want = np.linalg.solve(y.T @ (c[:, None] * y) + 0.3 * np.eye(4), y.T @ (c * p))
        np.testing.assert_allclose(got[u], want, atol=1e-10)


def test_repeated_pairs_average_ratings_and_add_up_counts():
    explicit = ExplicitALS(factors=1, regularization=1e-6, iterations=20)
    explicit.fit([1, 1, 2, 2], [7, 7, 7, 8], [2.0, 4.0, 3.0, 5.0])
    assert explicit.predict([1], [7])[0] == pytest.approx(3.0, abs=1e-2)
    implicit = ImplicitALS(factors=2, iterations=2, backend="numpy").fit([1, 1, 2], [7, 7, 8])
    indptr, indices = implicit._state("seen_indptr"), implicit._state("seen_indices")
    assert indices[indptr[0]:indptr[1]].tolist() == [0]


def test_save_and_load_round_trip(tmp_path):
    users, items, ratings, _ = low_rank_ratings()
    model = ExplicitALS(factors=2, iterations=3).fit(users, items, ratings)
    model.save(tmp_path / "m")
    again = ExplicitALS.load(tmp_path / "m")
    np.testing.assert_array_equal(again.item_vectors, model.item_vectors)
    np.testing.assert_array_equal(again.user_ids, model.user_ids)
    assert again.params() == model.params()
    np.testing.assert_array_equal(again.recommend("u3", 4)[0], model.recommend("u3", 4)[0])
    assert isinstance(MatrixFactorization.load(tmp_path / "m"), ExplicitALS)
    with pytest.raises(ParamError, match="not ImplicitALS"):
        ImplicitALS.load(tmp_path / "m")
    with pytest.raises(ParamError, match="cannot read"):
        ExplicitALS.load(tmp_path / "missing")


def test_bad_input_is_a_param_error():
    with pytest.raises(ParamError, match="factors"):
        ExplicitALS(factors=0)
    with pytest.raises(ParamError, match="regularization"):
        ExplicitALS(regularization=0)
    with pytest.raises(ParamError, match="alpha"):
        ImplicitALS(alpha=-1)
    with pytest.raises(ParamError, match="backend"):
        ImplicitALS(backend="gpu")
    with pytest.raises(ParamError, match="not fitted"):
        _ = ExplicitALS().user_vectors
    with pytest.raises(ParamError, match="differ in length"):
        ExplicitALS().fit([1, 2], [1], [3.0, 4.0])
    with pytest.raises(ParamError, match="ints or strings"):
        ExplicitALS().fit([1.5], [1], [3.0])
    with pytest.raises(ParamError, match=">= 0"):
        ImplicitALS().fit([1], [1], [-2.0])
    model = ImplicitALS(factors=2, iterations=1, backend="numpy").fit([1, 2], [1, 2])
    with pytest.raises(ParamError, match="unknown user"):
        model.recommend(99)


# -- MovieLens ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def movielens_split():
    """MovieLens with 20% of each user's ratings held out (seeded); skipped if unavailable."""
    from harrierdb.datasets import load_movielens

    try:
        data = load_movielens()
    except ParamError as exc:
        pytest.skip(f"MovieLens unavailable: {exc.message}")
    rng = np.random.default_rng(0)
    held = np.zeros(len(data), dtype=bool)
    order = np.argsort(data.users, kind="stable")
    for rows in np.split(order, np.flatnonzero(np.diff(data.users[order])) + 1):
        held[rng.choice(rows, round(0.2 * len(rows)), replace=False)] = True
    return data, ~held, held


def test_explicit_als_beats_the_global_mean_on_movielens(movielens_split):
    data, train, test = movielens_split
    model = ExplicitALS(factors=16, regularization=0.1, iterations=10, seed=0)
    model.fit(data.users[train], data.items[train], data.ratings[train])
    truth = data.ratings[test]
    rmse = np.sqrt(np.mean((model.predict(data.users[test], data.items[test]) - truth) ** 2))
    baseline = np.sqrt(np.mean((data.ratings[train].mean() - truth) ** 2))
    print(f"MovieLens explicit ALS RMSE {rmse:.4f} vs global mean {baseline:.4f}")
    assert rmse <= 0.9 * baseline


@pytest.mark.parametrize("backend", ["implicit", "numpy"])
def test_implicit_als_beats_popularity_on_movielens(movielens_split, backend):
    if backend == "implicit":
        pytest.importorskip("implicit")
    data, train, test = movielens_split
    factors = 32 if backend == "implicit" else 16  # the exact NumPy solver is slower
    model = ImplicitALS(factors=factors, regularization=1.0, alpha=4.0, iterations=15, backend=backend)
    model.fit(data.users[train], data.items[train])
    held: dict[int, set[int]] = {}
    for u, i in zip(data.users[test].tolist(), data.items[test].tolist()):
        held.setdefault(u, set()).add(i)
    seen: dict[int, set[int]] = {}
    for u, i in zip(data.users[train].tolist(), data.items[train].tolist()):
        seen.setdefault(u, set()).add(i)
    ids, counts = np.unique(data.items[train], return_counts=True)
    by_popularity = ids[np.argsort(-counts, kind="stable")].tolist()

    def popular(u: int) -> list[int]:
        return [i for i in by_popularity[:10 + len(seen[u])] if i not in seen[u]][:10]

    # recall@10: the share of a user's held-out items in their top 10, averaged over users.
    als = np.mean([len(set(model.recommend(u, 10)[0].tolist()) & h) / len(h) for u, h in held.items()])
    pop = np.mean([len(set(popular(u)) & h) / len(h) for u, h in held.items()])
    print(f"MovieLens implicit ALS ({backend}) recall@10 {als:.4f} vs popularity {pop:.4f}")
    assert als >= 2 * pop
