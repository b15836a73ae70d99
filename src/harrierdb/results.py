"""Result shapes that read like pymilvus's: dicts that also answer attribute access."""

from __future__ import annotations

from typing import Any


class Hit(dict):
    """One search hit as pymilvus 3 gives it: ``{<primary field>: pk, "distance": d, "entity":
    {...}}``. As in pymilvus, ``hit["words"]``, ``hit.get("words")`` and ``hit.words`` fall back
    to the entity's fields, and ``hit.entity`` is the hit itself, so the ORM-style
    ``hit.entity.get("words")`` reads a field; ``hit.id`` / ``hit.distance`` read the rest.

    Made by dict's own constructor, the primary key first (``id`` reads the first key), as a
    search builds one per hit and a Python ``__init__`` would double the cost of a result."""

    __slots__ = ()

    def __missing__(self, key: str) -> Any:
        entity = dict.get(self, "entity")  # pymilvus: output fields read from the hit itself
        if entity is None or key not in entity:
            raise KeyError(key)
        return entity[key]

    @property
    def id(self) -> Any:
        return dict.__getitem__(self, next(iter(self)))

    pk = id

    @property
    def distance(self) -> float:
        return self["distance"]

    @property
    def score(self) -> float:
        return self["distance"]

    @property
    def entity(self) -> Hit:
        return self

    @property
    def fields(self) -> dict:
        return self["entity"]

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return dict.__getitem__(self, key)
        return self["entity"].get(key, default)

    def to_dict(self) -> dict:
        return self

    def __getattr__(self, name: str) -> Any:
        entity = dict.get(self, "entity") or {}
        if name in entity:
            return entity[name]
        raise AttributeError(name)


class Hits(list):
    """The hits of one query, best first."""

    @property
    def ids(self) -> list:
        return [h.id for h in self]

    @property
    def distances(self) -> list[float]:
        return [h.distance for h in self]


class SearchResult(list):
    """One ``Hits`` per query vector."""

    def __str__(self) -> str:
        return f"data: {[list(h) for h in self]}"
