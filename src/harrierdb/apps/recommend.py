"""Recommendation as vector search: matrix-factorization vectors stored in HarrierDB.

:class:`Recommender` fits a matrix factorization (:mod:`harrierdb.embed.mf`) to
``(user, item, rating)`` triples and stores the vectors in two collections:

* ``{name}_items``: ``id``, ``vector``, ``popularity`` (number of ratings) and any item
  metadata (``title``, ``genres``, ... as dynamic fields);
* ``{name}_users``: ``id``, ``vector`` and ``seen`` (the user's rated items, JSON).

Both use the inner product (IP): ``user . item`` is the model's score, so recommending is an
IP search of the item collection with the user's vector, and similar items are an IP search
with an item's vector. A new :class:`Recommender` on the same database and name answers
without refitting; users it does not know get the most popular items.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.client import MilvusClient
from harrierdb.embed.mf import ExplicitALS, ImplicitALS, MatrixFactorization
from harrierdb.errors import ParamError
from harrierdb.schema import DataType

#: Column names read as user, item, rating and timestamp, in order of preference.
COLUMNS = {
    "user": ("user", "user_id", "userId", "userid", "users"),
    "item": ("item", "item_id", "itemId", "itemid", "movieId", "movie_id", "items"),
    "rating": ("rating", "ratings", "score", "value", "weight"),
    "timestamp": ("timestamp", "timestamps", "time", "ts"),
}
MODELS = {"implicit": ImplicitALS, "explicit": ExplicitALS}
#: Defaults for ``model="implicit"``, chosen on MovieLens (ml-latest-small, 20% held out per user).
IMPLICIT_DEFAULTS = {"factors": 64, "regularization": 20.0, "alpha": 2.0}
_INSERT_BATCH = 2000


class Recommender:
    """Item recommendations for users, served from collections ``{name}_users`` and ``{name}_items``.

    >>> rec = Recommender(client, "movies").fit("ratings.csv", items="movies.csv")
    >>> rec.recommend(42, k=10)            # [{"id": ..., "score": ..., "title": ...}, ...]
    """

    def __init__(self, client: MilvusClient, name: str):
        if not isinstance(client, MilvusClient):
            raise ParamError(f"client must be a harrierdb MilvusClient, got {type(client).__name__}")
        if not isinstance(name, str) or not name:
            raise ParamError(f"name must be a non-empty string, got {name!r}")
        self.client = client
        self.name = name
        self.users = f"{name}_users"
        self.items = f"{name}_items"
        self._popular: list[dict] | None = None

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, ratings: Any, items: Any = None, model: str | MatrixFactorization = "implicit",
            **model_params: Any) -> Recommender:
        """Fit ``model`` to ``ratings`` and (re)write both collections; returns ``self``.

        ``ratings``: a CSV/Parquet path, a DataFrame, a mapping of columns, a
        ``(users, items, ratings[, timestamps])`` tuple, or a :class:`harrierdb.datasets.Ratings`
        (whose titles and genres become item metadata). ``items``: item metadata, as a
        ``{item: title}`` or ``{item: {field: value}}`` mapping, a DataFrame or a CSV/Parquet
        path with an item column. ``model``: ``"implicit"`` (ratings read as confidence,
        best for top-k recommendation), ``"explicit"``, or an unfitted model instance;
        ``model_params`` go to the model class.
        """
        users, item_ids, values, _ = read_ratings(ratings)
        metadata = _dataset_metadata(ratings)
        if items is not None:
            for item, fields in read_items(items).items():
                metadata.setdefault(item, {}).update(fields)
        mf = _make_model(model, model_params)
        mf.fit(users, item_ids, values)

        user_ids, item_keys = mf.user_ids, mf.item_ids
        popularity = _counts(item_keys, item_ids)
        seen = _seen_lists(user_ids, item_keys, users, item_ids)
        self._create(mf.dim, user_ids.dtype.kind == "U", item_keys.dtype.kind == "U")
        item_rows = ({"id": _py(i), "vector": v, "popularity": int(n),
                      **{k: val for k, val in metadata.get(_py(i), {}).items() if k not in ("id", "vector")}}
                     for i, v, n in zip(item_keys, mf.item_vectors, popularity))
        user_rows = ({"id": _py(u), "vector": v, "seen": s}
                     for u, v, s in zip(user_ids, mf.user_vectors, seen))
        _insert_all(self.client, self.items, item_rows)
        _insert_all(self.client, self.users, user_rows)
        self._popular = None
        return self

    def _create(self, dim: int, str_users: bool, str_items: bool) -> None:
        for collection in (self.users, self.items):
            if self.client.has_collection(collection):
                self.client.drop_collection(collection)
        for collection, str_ids in ((self.users, str_users), (self.items, str_items)):
            schema = self.client.create_schema(enable_dynamic_field=True)
            if str_ids:
                schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
            else:
                schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            if collection == self.users:
                schema.add_field("seen", DataType.JSON)
            else:
                schema.add_field("popularity", DataType.INT64)
            index = self.client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="IP")
            self.client.create_collection(collection, schema=schema, index_params=index)

    # -- answering -----------------------------------------------------------------------------

    def recommend(self, user_id: Any, k: int = 10, exclude_seen: bool = True,
                  output_fields: Sequence[str] | None = None) -> list[dict]:
        """The ``k`` best items for ``user_id``, best first: dicts with ``id``, ``score`` and
        the item's metadata. Items the user rated are left out when ``exclude_seen``;
        an unknown user gets the most popular items (``score`` is then their popularity)."""
        _check_k(k)
        self._check_fitted()
        user = self._get(self.users, user_id, ["vector", "seen"])
        if user is None:
            return self.popular(k, output_fields)
        seen = list(user["seen"] or []) if exclude_seen else []
        filter, params = ("id not in {seen}", {"seen": seen}) if seen else ("", None)
        hits = self.client.search(self.items, data=[user["vector"]], limit=k, filter=filter,
                                  filter_params=params, output_fields=self._fields(output_fields),
                                  search_params={"metric_type": "IP"})
        return [_hit(h) for h in hits[0]]

    def similar_items(self, item_id: Any, k: int = 10, output_fields: Sequence[str] | None = None) -> list[dict]:
        """The ``k`` items whose vectors have the largest inner product with ``item_id``'s
        (itself excluded), best first; ParamError for an unknown item."""
        _check_k(k)
        self._check_fitted()
        item = self._get(self.items, item_id, ["vector"])
        if item is None:
            raise ParamError(f"unknown item {item_id!r}: it is not in {self.items!r}")
        hits = self.client.search(self.items, data=[item["vector"]], limit=k, filter="id != {me}",
                                  filter_params={"me": item["id"]},
                                  output_fields=self._fields(output_fields),
                                  search_params={"metric_type": "IP"})
        return [_hit(h) for h in hits[0]]

    def popular(self, k: int = 10, output_fields: Sequence[str] | None = None) -> list[dict]:
        """The ``k`` items with the most ratings: ``id``, ``score`` (= popularity), metadata."""
        _check_k(k)
        self._check_fitted()
        if self._popular is None:
            rows = self.client.query(self.items, filter="", output_fields=["id", "popularity"])
            rows.sort(key=lambda r: (-r["popularity"], str(r["id"])))
            self._popular = rows
        top = [r["id"] for r in self._popular[:k]]
        fields = self._fields(output_fields)
        by_id = {r["id"]: r for r in self.client.get(self.items, ids=top, output_fields=fields)}
        out = []
        for item in top:
            row = dict(by_id[item])
            out.append({"id": item, "score": float(row.get("popularity", 0)),
                        **{f: v for f, v in row.items() if f not in ("id", "vector")}})
        return out

    def seen(self, user_id: Any) -> list[Any]:
        """The items ``user_id`` rated in the fitted data ([] for an unknown user)."""
        self._check_fitted()
        user = self._get(self.users, user_id, ["seen"])
        return [] if user is None else list(user["seen"] or [])

    # -- helpers -------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        for collection in (self.users, self.items):
            if not self.client.has_collection(collection):
                raise ParamError(f"recommender {self.name!r} is not fitted: collection {collection!r} "
                                 "does not exist; call fit() first")

    def _get(self, collection: str, key: Any, fields: list[str]) -> dict | None:
        key = self._coerce_id(collection, key)
        if key is None:
            return None
        rows = self.client.get(collection, ids=[key], output_fields=["id", *fields])
        return rows[0] if rows else None

    def _coerce_id(self, collection: str, key: Any) -> Any:
        """``key`` as the collection's id type (None when it cannot be one, i.e. unknown)."""
        if isinstance(key, np.generic):
            key = key.item()
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise ParamError(f"an id must be an int or a string, got {key!r}")
        is_str = self.client._db.collection(collection).schema.primary_field.dtype is DataType.VARCHAR
        if is_str:
            return str(key)
        try:
            return int(key)
        except ValueError:
            return None

    def _fields(self, output_fields: Sequence[str] | None) -> list[str]:
        if output_fields is None:
            return ["*"]
        if isinstance(output_fields, str) or not all(isinstance(f, str) for f in output_fields):
            raise ParamError(f"output_fields must be a list of field names, got {output_fields!r}")
        return ["popularity", *output_fields]


# -- reading input -----------------------------------------------------------------------------------

def read_ratings(ratings: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``(users, items, ratings, timestamps or None)`` from any input :meth:`Recommender.fit` takes."""
    if hasattr(ratings, "users") and hasattr(ratings, "items") and hasattr(ratings, "ratings"):
        columns: Mapping[str, Any] = {"user": ratings.users, "item": ratings.items,
                                      "rating": ratings.ratings,
                                      "timestamp": getattr(ratings, "timestamps", None)}
    elif isinstance(ratings, tuple):
        if len(ratings) not in (2, 3, 4):
            raise ParamError(f"a ratings tuple is (users, items[, ratings[, timestamps]]), got {len(ratings)} parts")
        columns = dict(zip(("user", "item", "rating", "timestamp"), ratings))
    else:
        columns = _table(ratings, "ratings")
    user = _column(columns, "user", required=True)
    item = _column(columns, "item", required=True)
    rating = _column(columns, "rating")
    stamp = _column(columns, "timestamp")
    users, items = _ids(user, "users"), _ids(item, "items")
    n = len(users)
    if len(items) != n:
        raise ParamError(f"users and items differ in length: {n} != {len(items)}")
    if n == 0:
        raise ParamError("no ratings to fit")
    values = np.ones(n, dtype=np.float32) if rating is None else _numbers(rating, "ratings", n)
    stamps = None if stamp is None else _numbers(stamp, "timestamps", n)
    return users, items, values, stamps


def read_items(items: Any) -> dict[Any, dict]:
    """Item metadata as ``{item id: {field: value}}``."""
    if isinstance(items, Mapping) and not _looks_columnar(items):
        out = {}
        for key, value in items.items():
            fields = value if isinstance(value, Mapping) else {"title": value}
            out[_py(key)] = {str(k): _py(v) for k, v in fields.items()}
        return out
    columns = _table(items, "items")
    item_col = next((c for c in (*COLUMNS["item"], "id") if c in columns), None)
    if item_col is None:
        raise ParamError(f"items need an item id column (one of {COLUMNS['item']}), got {list(columns)}")
    keys = _ids(columns[item_col], "items")
    others = [c for c in columns if c != item_col]
    values = {c: list(columns[c]) for c in others}
    return {_py(k): {c: _py(values[c][j]) for c in others} for j, k in enumerate(keys)}


def _table(source: Any, label: str) -> Mapping[str, Any]:
    """Columns of a CSV/Parquet path, a DataFrame or a mapping of columns."""
    if isinstance(source, (str, os.PathLike)):
        return _read_file(Path(source), label)
    if hasattr(source, "columns") and hasattr(source, "__getitem__"):  # pandas/polars DataFrame
        return {str(c): np.asarray(source[c]) for c in source.columns}
    if isinstance(source, Mapping):
        return source
    raise ParamError(f"{label} must be a CSV/Parquet path, a DataFrame, a mapping of columns or a "
                     f"(users, items, ratings) tuple, got {type(source).__name__}")


def _read_file(path: Path, label: str) -> dict[str, Any]:
    if not path.is_file():
        raise ParamError(f"no such {label} file: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ParamError("Parquet needs pyarrow: pip install 'harrierdb[io]'") from None
        table = pq.read_table(path)
        return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    if suffix in (".csv", ".tsv"):
        import csv

        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            rows = list(reader)
            names = reader.fieldnames or []
        return {name: _parse_column([r[name] for r in rows]) for name in names}
    raise ParamError(f"cannot read {label} from {str(path)!r}: expected .csv, .tsv or .parquet")


def _parse_column(cells: list[str]) -> np.ndarray:
    """CSV cells as ints, else floats, else strings."""
    for kind in (np.int64, np.float64):
        try:
            return np.asarray(cells, dtype=np.str_).astype(kind)
        except ValueError:
            continue
    return np.asarray(cells, dtype=object)


def _column(columns: Mapping[str, Any], role: str, required: bool = False) -> Any:
    for name in COLUMNS[role]:
        if name in columns and columns[name] is not None:
            return columns[name]
    if required:
        raise ParamError(f"no {role} column: expected one of {COLUMNS[role]}, got {list(columns)}")
    return None


def _looks_columnar(mapping: Mapping) -> bool:
    return any(k in mapping for k in (*COLUMNS["item"], "id")) and all(
        isinstance(v, (list, tuple, np.ndarray)) for v in mapping.values())


def _ids(values: Any, label: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ParamError(f"{label} must be a 1-d sequence of ids, got shape {array.shape}")
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and len(array) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    if array.dtype.kind in "OUS":
        try:
            return array.astype(np.str_)
        except (TypeError, ValueError):
            pass
    raise ParamError(f"{label} must be ints or strings, got dtype {array.dtype}")


def _numbers(values: Any, label: str, n: int) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParamError(f"{label} must be numbers") from None
    if array.shape != (n,):
        raise ParamError(f"{label} must be a 1-d sequence of {n} numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ParamError(f"{label} must be finite")
    return array


def _dataset_metadata(ratings: Any) -> dict[Any, dict]:
    """Titles and genres of a :class:`harrierdb.datasets.Ratings`, else nothing."""
    ids = getattr(ratings, "item_ids", None)
    titles = getattr(ratings, "titles", None)
    if ids is None or titles is None:
        return {}
    genres = getattr(ratings, "genres", None)
    out: dict[Any, dict] = {}
    for j, item in enumerate(np.asarray(ids).tolist()):
        out[item] = {"title": str(titles[j])}
        if genres is not None:
            out[item]["genres"] = str(genres[j])
    return out


def _make_model(model: str | MatrixFactorization, params: dict[str, Any]) -> MatrixFactorization:
    if isinstance(model, MatrixFactorization):
        if params:
            raise ParamError("pass model parameters to the model instance, not to fit()")
        return model
    if model not in MODELS:
        raise ParamError(f"model must be one of {sorted(MODELS)} or a MatrixFactorization, got {model!r}")
    if model == "implicit":
        params = {**IMPLICIT_DEFAULTS, **params}
    try:
        return MODELS[model](**params)
    except TypeError as exc:
        raise ParamError(f"bad parameters for {model!r}: {exc}") from None


# -- evaluation ----------------------------------------------------------------------------------------

def split_per_user(users: np.ndarray, fraction: float = 0.2, seed: int = 0,
                   timestamps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(train, test)`` holding out ``fraction`` of each user's ratings:
    chosen at random (seeded), or each user's latest ones when ``timestamps`` are given.
    Every user keeps at least one training rating."""
    if not 0 < fraction < 1:
        raise ParamError(f"fraction must be in (0, 1), got {fraction!r}")
    users = np.asarray(users)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(users)) if timestamps is None else np.argsort(timestamps, kind="stable")
    test = np.zeros(len(users), dtype=bool)
    _, inverse = np.unique(users[order], return_inverse=True)
    for group in np.split(order[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1]):
        n_test = min(int(round(len(group) * fraction)), len(group) - 1)
        if n_test > 0:
            test[group[len(group) - n_test:]] = True
    return ~test, test


def recall_at_k(recommended: Mapping[Any, Sequence[Any]], relevant: Mapping[Any, set], k: int = 10) -> float:
    """Mean over users with relevant items of ``|top-k ∩ relevant| / |relevant|``."""
    scores = [len(set(list(recommended.get(u, []))[:k]) & set(rel)) / len(rel)
              for u, rel in relevant.items() if rel]
    return float(np.mean(scores)) if scores else 0.0


# -- small helpers ---------------------------------------------------------------------------------------

def _counts(sorted_ids: np.ndarray, items: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(sorted_ids, items), minlength=len(sorted_ids))


def _seen_lists(user_ids: np.ndarray, item_ids: np.ndarray, users: np.ndarray,
                items: np.ndarray) -> list[list[Any]]:
    rows = np.searchsorted(user_ids, users)
    order = np.argsort(rows, kind="stable")
    bounds = np.cumsum(np.bincount(rows, minlength=len(user_ids)))[:-1]
    return [sorted(set(group.tolist())) for group in np.split(items[order], bounds)]


def _insert_all(client: MilvusClient, collection: str, rows: Any) -> None:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _INSERT_BATCH:
            client.insert(collection, batch)
            batch = []
    if batch:
        client.insert(collection, batch)


def _hit(hit: dict) -> dict:
    entity = {k: v for k, v in (hit.get("entity") or {}).items() if k not in ("id", "vector")}
    return {"id": hit["id"], "score": float(hit["distance"]), **entity}


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 16384:
        raise ParamError(f"k must be an int in [1, 16384], got {k!r}")
