"""The rows a search may return, and what searches derive from them, computed once.

A filtered search first turns its filter into a row mask. Applications repeat the same
filters (a tenant, a category, a date window), so the collection cache memoises one
``Candidates`` per distinct (filter, parameters, partitions) until the rows change, and each
``Candidates`` keeps what the search plan derives from the mask: the row positions, the
gathered vectors an exact scan reads, the FAISS selector bitmap. A repeated filtered search
then costs a dictionary lookup instead of a pass over every row.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


class Candidates:
    """A read-only row mask (alive, in the asked partitions, passing the filter)."""

    def __init__(self, mask: np.ndarray):
        mask.flags.writeable = False  # shared by every search that repeats this filter
        self.mask = mask
        self.count = int(np.count_nonzero(mask))
        self._derived: dict[Hashable, Any] = {}

    @property
    def positions(self) -> np.ndarray:
        """Positions of the candidate rows, ascending."""
        return self.derived("positions", lambda: np.flatnonzero(self.mask))

    def derived(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered under ``key`` for as long as these candidates live."""
        value = self._derived.get(key)
        if value is None:
            value = self._derived[key] = compute()
        return value
