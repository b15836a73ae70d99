"""Result shapes that read like pymilvus's: dicts that also answer attribute access."""

from __future__ import annotations

from typing import Any


class Entity(dict):
    """A hit's fields: ``entity["words"]``, ``entity.get("words")`` or ``entity.words``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Hit(dict):
    """One search hit: ``{"id", "distance", "entity"}``, also as ``hit.id`` / ``hit.distance``.

    Made with ``Hit(id=..., distance=..., entity=Entity(...))``: dict's own constructor, as a
    search builds one per hit (a Python ``__init__`` would double the cost of a result)."""

    __slots__ = ()

    @property
    def id(self) -> Any:
        return self["id"]

    @property
    def pk(self) -> Any:
        return self["id"]

    @property
    def distance(self) -> float:
        return self["distance"]

    @property
    def score(self) -> float:
        return self["distance"]

    @property
    def entity(self) -> Entity:
        return self["entity"]

    @property
    def fields(self) -> Entity:
        return self["entity"]

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        return self["entity"].get(key, default)

    def __getattr__(self, name: str) -> Any:
        entity = self["entity"]
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
