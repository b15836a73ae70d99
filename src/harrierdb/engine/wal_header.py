"""A free look at whether anyone committed to a SQLite database in WAL mode.

Every search first asks whether another process committed since the last call (``PRAGMA
data_version``). That statement is cheap for SQL, about 2 µs in a tight loop, but it runs
SQLite's read-transaction code and takes locks, and right after an index walk has evicted them
from the CPU caches it costs 6-7 µs: a tenth of a whole HNSW search.

SQLite publishes what every commit changes: the wal-index header at the start of the ``-shm``
file, which all connections map into memory (https://www.sqlite.org/walformat.html, "The
WAL-Index Header"). Its two copies hold a counter bumped by each transaction (``iChange``), the
last valid frame and the WAL salts; a commit rewrites both copies, the second first. So while
those 96 bytes are unchanged, no commit became visible and ``data_version`` has not moved:
reading them from a read-only map costs 0.1 µs. Whenever they differ, or cannot be read, the
caller asks SQLite itself.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

_HEADER_BYTES = 96                # two copies of the 48-byte WalIndexHdr, equal when settled
_VERSION = struct.pack("=I", 3007000)  # iVersion of every wal-index since SQLite 3.7.0, native order
_IS_INIT_OFFSET = 12


class WalHeader:
    """The wal-index header of one database, mapped read-only; ``read()`` is None when the
    header is not available (no ``-shm`` file, another format): the caller must ask SQLite."""

    def __init__(self, database_file: Path):
        self._map: mmap.mmap | None = None
        try:
            with open(f"{database_file}-shm", "rb") as f:  # the map outlives the file object
                self._map = mmap.mmap(f.fileno(), _HEADER_BYTES, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # no -shm file (not WAL mode), or shorter than a header
            self._map = None
        self._last_valid: bytes | None = None

    def read(self) -> bytes | None:
        """The header's bytes as they are now, or None if they cannot vouch for anything."""
        m = self._map
        if m is None:
            return None
        header = m[:_HEADER_BYTES]
        if header == self._last_valid:  # the usual case: the same bytes passed the checks below
            return header
        if header[:4] != _VERSION or not header[_IS_INIT_OFFSET] or header[:48] != header[48:]:
            return None  # mid-commit or being recovered, or a format this code does not know
        self._last_valid = header
        return header

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
