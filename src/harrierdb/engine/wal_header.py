"""A near-free look at whether anyone committed to a SQLite database in WAL mode.

Every call first asks whether another process committed since the last one (``PRAGMA
data_version``). That statement is cheap for SQL, about 2 µs in a tight loop, but it runs
SQLite's read-transaction code and takes locks, and right after an index walk has evicted them
from the CPU caches it costs 4-7 µs: a tenth of a whole HNSW search.

SQLite publishes what every commit changes: the wal-index header at the start of the ``-shm``
file, which all connections map into memory (https://www.sqlite.org/walformat.html, "The
WAL-Index Header"). Processes running different SQLite versions share that map, so its layout
is fixed. Its two copies hold a counter bumped by each transaction (``iChange``), the last
valid frame and the WAL salts; a commit rewrites both copies, the second first. So while those
96 bytes are unchanged, no commit became visible and ``data_version`` has not moved: reading
them from a read-only map costs 0.1 µs. Whenever they differ, or cannot be read, the caller
asks SQLite itself.

One trap decides the shape of this module: closing *any* descriptor of a file drops every
POSIX lock the process holds on it, and SQLite's WAL read locks are such locks. So the map and
its descriptor are opened once per ``-shm`` file and process, shared by every ``Store`` on it,
and closed only when the last of them has closed its SQLite connection.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

HEADER_BYTES = 96                # two copies of the 48-byte WalIndexHdr, equal when settled
_VERSION = struct.pack("=I", 3007000)  # iVersion of every wal-index since SQLite 3.7.0, native order
_IS_INIT_OFFSET = 12


@dataclass
class _SharedMap:
    fd: int
    map: mmap.mmap
    users: int = 0


_maps: dict[tuple[int, int], _SharedMap] = {}  # by the -shm file's (device, inode)
_maps_lock = threading.Lock()


class WalHeader:
    """The wal-index header of one database, mapped read-only; ``read()`` is None when the
    header is not available (no ``-shm`` file, another format): the caller must ask SQLite.

    Open it after the SQLite connection (which creates the ``-shm`` file) and close it after
    closing that connection. ``map`` is the mapped header itself (None without one): a caller
    holding bytes that ``read()`` vouched for may compare ``map[:HEADER_BYTES]`` with them
    directly, since equal bytes need no second look."""

    def __init__(self, database_file: Path):
        self._key: tuple[int, int] | None = None
        self.map: mmap.mmap | None = None
        path = f"{database_file}-shm"
        with _maps_lock:
            try:
                st = os.stat(path)
            except OSError:  # no -shm file: not in WAL mode
                return
            key = (st.st_dev, st.st_ino)
            shared = _maps.get(key)
            if shared is None:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    return
                try:
                    shared = _SharedMap(fd, mmap.mmap(fd, HEADER_BYTES, access=mmap.ACCESS_READ))
                except (OSError, ValueError):  # shorter than a header
                    # Closing drops this process's POSIX locks on the file; none are held on a
                    # -shm file too short to hold a header, which no connection has set up.
                    os.close(fd)
                    return
                _maps[key] = shared
            shared.users += 1
            self._key, self.map = key, shared.map

    def read(self) -> bytes | None:
        """The header's bytes as they are now, or None if they cannot vouch for anything."""
        m = self.map
        if m is None:
            return None
        header = m[:HEADER_BYTES]
        if header[:4] != _VERSION or not header[_IS_INIT_OFFSET] or header[:48] != header[48:]:
            return None  # mid-commit or being recovered, or a format this code does not know
        return header

    def close(self) -> None:
        """Stop using the map; the last user of a ``-shm`` file in this process unmaps it."""
        with _maps_lock:
            if self._key is None:
                return
            shared = _maps[self._key]
            shared.users -= 1
            if shared.users == 0:
                del _maps[self._key]
                shared.map.close()
                os.close(shared.fd)
            self._key, self.map = None, None
