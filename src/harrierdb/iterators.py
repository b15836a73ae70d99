"""``search_iterator`` and ``query_iterator``: page through results in batches.

Both take a snapshot of the matching rows when created (their order fixed: by distance for a
search, by primary key for a query) and build each page's entities only when it is asked for,
so every match comes back exactly once however the pages are sized.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from harrierdb.errors import ParamError


class _PagedIterator:
    """pymilvus's iterator protocol: ``next()`` returns a page, empty at the end; ``close()``."""

    def __init__(self, n: int, batch_size: int, make_page: Callable[[int, int], list]):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ParamError(f"batch_size must be a positive integer, got {batch_size!r}")
        self._n = n
        self._batch = batch_size
        self._make_page = make_page
        self._at = 0

    def next(self) -> list:
        if self._at >= self._n:
            return []
        start, self._at = self._at, min(self._at + self._batch, self._n)
        return self._make_page(start, self._at)

    def close(self) -> None:
        self._at = self._n

    def __iter__(self) -> Iterator[list]:
        while page := self.next():
            yield page


class QueryIterator(_PagedIterator):
    """Rows matching a filter, in primary-key order, ``batch_size`` at a time."""

    def __init__(self, collection: Any, batch_size: int, limit: int, filter: str,
                 output_fields: Any, partition_names: Any, filter_params: Any):
        cache = collection.cache()
        mask = collection._candidate_mask(cache, filter, filter_params, partition_names)
        positions = np.flatnonzero(mask)
        positions = positions[np.argsort(cache.pks.view[positions], kind="stable")]
        if limit is not None and limit >= 0:
            positions = positions[:limit]
        fields = collection._output_fields(output_fields, default_all=True)

        def page(start: int, stop: int) -> list:
            return [collection._entity(cache, p, fields, with_pk=True) for p in positions[start:stop].tolist()]

        super().__init__(len(positions), batch_size, page)


class SearchIterator(_PagedIterator):
    """The hits of one query vector, best first, ``batch_size`` at a time."""

    def __init__(self, collection: Any, data: Any, batch_size: int, limit: int, filter: str,
                 output_fields: Any, search_params: Any, anns_field: Any, partition_names: Any,
                 filter_params: Any):
        cache, distances, positions = collection.ranked(
            data, anns_field, filter, limit, search_params, filter_params, partition_names)
        fields = collection._output_fields(output_fields, default_all=False)

        def page(start: int, stop: int) -> list:
            return collection._hits(cache, [(distances[start:stop], positions[start:stop])], fields)[0]

        super().__init__(len(positions), batch_size, page)
