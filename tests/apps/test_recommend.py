"""Recommender: MF vectors in two collections, recommend / similar_items / popularity fallback."""

from __future__ import annotations

import numpy as np
import pytest

from harrierdb import MilvusClient
from harrierdb.apps.recommend import (
    Recommender,
    read_ratings,
    recall_at_k,
    split_per_user,
)
from harrierdb.errors import ParamError

TITLES = {i: f"movie {i}" for i in range(20)}


def two_taste_ratings(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Users 0-19 rate items 0-9, users 20-39 rate items 10-19; item 0 and 10 are the hits."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(40):
        base = 0 if user < 20 else 10
        picks = {base} | set((base + rng.choice(np.arange(1, 10), 5, replace=False)).tolist())
        users += [user] * len(picks)
        items += sorted(picks)
    ratings = rng.integers(3, 6, len(users)).astype(float)
    return np.array(users), np.array(items), ratings


@pytest.fixture
def fitted(client):
    users, items, ratings = two_taste_ratings()
    rec = Recommender(client, "shop").fit((users, items, ratings), items=TITLES,
                                          factors=4, regularization=0.1)
    return rec, users, items


def test_fit_stores_two_ip_collections(fitted, client):
    rec, users, items = fitted
    assert client.get_collection_stats("shop_users")["row_count"] == 40
    assert client.get_collection_stats("shop_items")["row_count"] == 20
    row = client.get("shop_items", ids=[3], output_fields=["title", "popularity"])[0]
    assert row["title"] == "movie 3" and row["popularity"] == int((items == 3).sum())
    assert sorted(rec.seen(0)) == sorted(items[users == 0].tolist())
    assert client.describe_index("shop_items", "vector")["metric_type"] == "IP"


def test_recommend_excludes_seen_and_follows_taste(fitted):
    rec, users, items = fitted
    hits = rec.recommend(0, k=3)
    assert len(hits) == 3 and all("title" in h and "score" in h for h in hits)
    seen = set(items[users == 0].tolist())
    assert not {h["id"] for h in hits} & seen
    assert all(h["id"] < 10 for h in hits)  # user 0's taste: items 0-9
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    with_seen = {h["id"] for h in rec.recommend(0, k=10, exclude_seen=False)}
    assert with_seen & seen


def test_unknown_user_gets_popular_items(fitted):
    rec, _, _ = fitted
    popular = rec.recommend(10**6, k=2)
    assert {h["id"] for h in popular} == {0, 10}  # rated by every user of their half
    assert popular == rec.popular(2)
    assert rec.recommend("nobody", k=2) == popular  # not even an int id
    assert "vector" not in popular[0]


def test_similar_items_not_itself(fitted):
    rec, _, _ = fitted
    hits = rec.similar_items(12, k=5)
    ids = [h["id"] for h in hits]
    assert len(ids) == 5 and 12 not in ids
    assert sum(i >= 10 for i in ids) >= 4
    with pytest.raises(ParamError, match="unknown item"):
        rec.similar_items(99)


def test_reopened_database_answers_without_refit(fitted, db_path, client):
    rec, _, _ = fitted
    expected = rec.recommend(5, k=4)
    client.close()
    with MilvusClient(db_path) as again:
        assert Recommender(again, "shop").recommend(5, k=4) == expected


def test_inputs_csv_parquet_dataframe_and_string_ids(client, tmp_path):
    pd = pytest.importorskip("pandas")
    users, items, ratings = two_taste_ratings()
    frame = pd.DataFrame({"userId": [f"u{u}" for u in users], "movieId": items, "rating": ratings})
    csv_path, pq_path = tmp_path / "r.csv", tmp_path / "r.parquet"
    frame.to_csv(csv_path, index=False)
    pytest.importorskip("pyarrow")
    frame.to_parquet(pq_path)
    pd.DataFrame({"movieId": list(TITLES), "title": list(TITLES.values())}).to_csv(tmp_path / "m.csv", index=False)
    for source in (frame, str(csv_path), pq_path):
        u, i, r, t = read_ratings(source)
        assert u.dtype.kind == "U" and i.dtype.kind == "i" and np.allclose(r, ratings) and t is None
    rec = Recommender(client, "s").fit(str(csv_path), items=str(tmp_path / "m.csv"), factors=4)
    hits = rec.recommend("u1", k=2)
    assert len(hits) == 2 and hits[0]["title"].startswith("movie")
    assert rec.recommend(1, k=2) == rec.popular(2)  # int 1 is not user "u1"


def test_bad_input(client):
    rec = Recommender(client, "r")
    with pytest.raises(ParamError, match="not fitted"):
        rec.recommend(1)
    with pytest.raises(ParamError, match="no user column"):
        rec.fit({"item": [1], "rating": [1.0]})
    with pytest.raises(ParamError, match="differ in length"):
        rec.fit(([1, 2], [1]))
    with pytest.raises(ParamError, match="finite"):
        rec.fit(([1, 2], [1, 2], [1.0, float("nan")]))
    with pytest.raises(ParamError, match="model must be"):
        rec.fit(([1, 2], [1, 2]), model="svd")
    with pytest.raises(ParamError, match="no such ratings file"):
        rec.fit("missing.csv")
    with pytest.raises(ParamError, match="name"):
        Recommender(client, "")
    users, items, _ = two_taste_ratings()
    rec.fit((users, items), factors=2)
    for bad_k in (0, -1, "3", True):
        with pytest.raises(ParamError, match="k must be"):
            rec.recommend(0, k=bad_k)
    with pytest.raises(ParamError, match="id must be"):
        rec.recommend([0])


def test_split_and_recall():
    users = np.repeat(np.arange(5), 10)
    train, test = split_per_user(users, 0.2, seed=3)
    assert (train ^ test).all() and all(test[users == u].sum() == 2 for u in range(5))
    assert np.array_equal(split_per_user(users, 0.2, seed=3)[1], test)
    assert recall_at_k({1: [1, 2, 3]}, {1: {3, 4}, 2: {5}}, k=2) == 0.0
    assert recall_at_k({1: [3, 2]}, {1: {3, 4}}, k=2) == 0.5
    with pytest.raises(ParamError):
        split_per_user(users, 1.5)


def test_cli_fit_and_recommend(tmp_path, monkeypatch, capsys):
    import harrierdb.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("harrierdb.apps.app_commands",))
    users, items, ratings = two_taste_ratings()
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in zip(users, items, ratings)))
    db = str(tmp_path / "db")
    assert cli.main(["recommend", db, "shop", "--fit", str(path), "--user", "0", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "fitted shop: 40 users, 20 items" in out and "top 3 for user 0" in out
    assert cli.main(["recommend", db, "shop", "--user", "12345", "--k", "2", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and '"id": 0' in lines[0] + lines[1]
    assert cli.main(["recommend", db, "shop", "--item", "3", "--k", "4"]) == 0
    assert "items similar to 3" in capsys.readouterr().out
    assert cli.main(["recommend", db, "shop"]) == 2
    assert cli.main(["recommend", str(tmp_path / "none"), "shop", "--user", "1"]) == 2


# -- MovieLens: better than popularity ----------------------------------------------------------------

@pytest.fixture(scope="module")
def movielens():
    from harrierdb.datasets import load_movielens

    try:
        return load_movielens()
    except ParamError as exc:
        pytest.skip(f"MovieLens unavailable: {exc.message}")


def test_movielens_recall_beats_popularity(movielens, tmp_path):
    ml = movielens
    train, test = split_per_user(ml.users, 0.2, seed=0)
    relevant: dict[int, set] = {}
    for user, item in zip(ml.users[test].tolist(), ml.items[test].tolist()):
        relevant.setdefault(user, set()).add(item)
    with MilvusClient(str(tmp_path / "ml.db")) as client:
        rec = Recommender(client, "ml")
        rec.fit((ml.users[train], ml.items[train], ml.ratings[train]),
                items={i: t for i, t in zip(ml.item_ids.tolist(), ml.titles.tolist())})
        ours = {user: [h["id"] for h in rec.recommend(user, k=10)] for user in relevant}
        ranked = [h["id"] for h in rec.popular(3000, output_fields=[])]
    seen: dict[int, set] = {}
    for user, item in zip(ml.users[train].tolist(), ml.items[train].tolist()):
        seen.setdefault(user, set()).add(item)
    popular = {user: [i for i in ranked if i not in seen[user]][:10] for user in relevant}
    assert all(not set(ours[u]) & seen[u] for u in relevant)
    ours_recall, pop_recall = recall_at_k(ours, relevant), recall_at_k(popular, relevant)
    print(f"\nMovieLens recall@10: recommend {ours_recall:.4f}, popularity {pop_recall:.4f} "
          f"({ours_recall / pop_recall:.2f}x)")
    assert ours_recall >= 2 * pop_recall
