"""A reader-writer lock: many searches may read an index at once, catching it up is exclusive.

FAISS releases the GIL while it searches, so threads searching one index run in parallel;
adding rows to that index while one of them walks it is undefined behaviour, and two threads
catching up at once would add the same rows twice. ``with lock.read:`` around a search and
``with lock.write:`` around a change keep both apart without serialising the searches.
"""

from __future__ import annotations

import threading
from typing import Any


class ReadWriteLock:
    """Shared ``read`` / exclusive ``write`` context managers (writers wait for readers).

    Searches take the read side on every call, so it is the cheap one: the bare mutex (a C
    context manager) and no notification unless a writer is waiting."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._changed = threading.Condition(self._mutex)
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self.read = _Side(self._acquire_read, self._release_read)
        self.write = _Side(self._acquire_write, self._release_write)

    def _acquire_read(self) -> None:
        with self._mutex:
            if not self._writing:
                self._readers += 1
                return
        with self._changed:
            while self._writing:
                self._changed.wait()
            self._readers += 1

    def _release_read(self) -> None:
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._writers_waiting:
                self._changed.notify_all()

    def _acquire_write(self) -> None:
        with self._changed:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._changed.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True

    def _release_write(self) -> None:
        with self._changed:
            self._writing = False
            self._changed.notify_all()


class _Side:
    """One side of the lock as a context manager (a plain class: cheaper than a generator)."""

    __slots__ = ("_enter", "_exit")

    def __init__(self, enter: Any, exit_: Any) -> None:
        self._enter, self._exit = enter, exit_

    def __enter__(self) -> None:
        self._enter()

    def __exit__(self, *exc: object) -> None:
        self._exit()
