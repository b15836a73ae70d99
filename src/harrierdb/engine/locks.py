"""A reader-writer lock: many searches may read an index at once, catching it up is exclusive.

FAISS releases the GIL while it searches, so threads searching one index run in parallel;
adding rows to that index while one of them walks it is undefined behaviour, and two threads
catching up at once would add the same rows twice. ``with lock.local.read:`` around a search
and ``with lock.write:`` around a change keep both apart without serialising the searches.

The read side is taken on every search, right after a graph walk has evicted the CPU caches,
where each Python call costs microseconds. So it is a "big reader lock": every thread that
reads gets a plain ``threading.Lock`` of its own (a context manager written in C, which no
other reader ever contends), and a writer takes all of those locks in turn. Writes are rare
(an index catching up with new rows) and pay for it; reads cost one uncontended lock.
"""

from __future__ import annotations

import threading
import weakref


class ReadWriteLock:
    """``with lock.local.read:`` shares (each thread its own lock); ``with lock.write:`` is
    alone, once the searches already inside have left. Neither side is re-entrant: a thread
    must not read while it writes, or read inside its own read."""

    def __init__(self) -> None:
        # Held by the writer for the whole write, so that no thread registers meanwhile.
        self.mutex = threading.Lock()
        # Every reading thread's lock, dropped with its thread (a thread's locals die with it).
        self.readers: weakref.WeakSet = weakref.WeakSet()
        self.local = _ThreadReadLock(self)
        self.write = _WriteSide(self)


class _ThreadReadLock(threading.local):
    """``read``: the calling thread's own read lock, made and registered on its first use."""

    def __init__(self, lock: ReadWriteLock) -> None:
        self.read = threading.Lock()
        with lock.mutex:  # waits while a writer holds every registered lock
            lock.readers.add(self.read)


class _WriteSide:
    """The write side as a context manager: the mutex, then every reader's lock."""

    __slots__ = ("_lock", "_held")

    def __init__(self, lock: ReadWriteLock) -> None:
        self._lock = lock
        self._held: list[threading.Lock] = []

    def __enter__(self) -> None:
        lock = self._lock
        lock.mutex.acquire()
        held = list(lock.readers)  # strong references: none is dropped while held
        for reader in held:
            reader.acquire()  # waits for that thread's search in progress, if any
        self._held = held

    def __exit__(self, *exc: object) -> None:
        held, self._held = self._held, []
        for reader in held:
            reader.release()
        self._lock.mutex.release()
