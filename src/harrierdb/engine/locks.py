"""A reader-writer lock: many searches may read an index at once, catching it up is exclusive.

FAISS releases the GIL while it searches, so threads searching one index run in parallel;
adding rows to that index while one of them walks it is undefined behaviour, and two threads
catching up at once would add the same rows twice. ``with lock.read:`` around a search and
``with lock.write:`` around a change keep both apart without serialising the searches.
"""

from __future__ import annotations

import threading


class ReadWriteLock:
    """Shared ``read`` / exclusive ``write`` context managers (writers wait for readers).

    Searches take the read side on every call, so it is the cheap one: the bare mutex (a C
    context manager), no notification unless a writer is waiting, no call beyond
    ``__enter__`` and ``__exit__``."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.changed = threading.Condition(self.mutex)  # signalled when a side is given up
        self.readers = 0
        self.writing = False
        self.writers_waiting = 0
        self.read = _ReadSide(self)
        self.write = _WriteSide(self)


class _Side:
    """One side of the lock as a context manager."""

    __slots__ = ("_lock",)

    def __init__(self, lock: ReadWriteLock) -> None:
        self._lock = lock


class _ReadSide(_Side):
    __slots__ = ()

    def __enter__(self) -> None:
        lock = self._lock
        with lock.mutex:
            if not lock.writing:
                lock.readers += 1
                return
        with lock.changed:
            while lock.writing:
                lock.changed.wait()
            lock.readers += 1

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        with lock.mutex:
            lock.readers -= 1
            if not lock.readers and lock.writers_waiting:
                lock.changed.notify_all()


class _WriteSide(_Side):
    __slots__ = ()

    def __enter__(self) -> None:
        lock = self._lock
        with lock.changed:
            lock.writers_waiting += 1
            try:
                while lock.writing or lock.readers:
                    lock.changed.wait()
            finally:
                lock.writers_waiting -= 1
            lock.writing = True

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        with lock.changed:
            lock.writing = False
            lock.changed.notify_all()
