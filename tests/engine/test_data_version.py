"""The per-call consistency check: every commit of another connection moves
``Store.data_version``, and nothing else does; SQLite is asked only when its wal-index
header moved, and looking at that header never takes SQLite's locks away."""

import os
import sqlite3

import pytest

from harrierdb.engine.storage import DB_FILE, Store
from harrierdb.engine.wal_header import WalHeader


def _statements(store: Store) -> list[str]:
    seen: list[str] = []
    store.conn.set_trace_callback(seen.append)
    return seen


def _locks_held_on(path, pid: int) -> list[str]:
    inode = os.stat(path).st_ino
    with open("/proc/locks") as f:
        return [line for line in f if f":{inode} " in line and f" {pid} " in line]


def test_every_commit_of_another_connection_is_seen(tmp_path):
    reader, writer = Store(tmp_path / "db"), Store(tmp_path / "db")
    versions = [reader.data_version()]
    for i in range(20):
        with writer.write() as c:
            c.execute("INSERT INTO meta VALUES (?, 'x')", (f"key {i}",))
        versions.append(reader.data_version())
        assert versions[-1] != versions[-2], f"commit {i} was not seen"
        assert reader.data_version() == versions[-1]  # and nothing moves without a commit
    writer.flush()  # a checkpoint copies pages back without changing the data
    assert reader.data_version() == versions[-1]
    reader.close(), writer.close()


def test_commits_after_a_wal_restart_are_seen(tmp_path):
    reader, writer = Store(tmp_path / "db"), Store(tmp_path / "db")
    with writer.write() as c:
        c.execute("INSERT INTO meta VALUES ('a', 'x')")
    before = reader.data_version()
    writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the next commit restarts the WAL
    with writer.write() as c:
        c.execute("INSERT INTO meta VALUES ('b', 'x')")
    assert reader.data_version() != before
    reader.close(), writer.close()


def test_an_unchanged_database_costs_no_sql_statement(tmp_path):
    store = Store(tmp_path / "db")
    first = store.data_version()
    statements = _statements(store)
    for _ in range(5):
        assert store.data_version() == first
    assert statements == []
    store.close()


def test_no_header_without_a_wal_index(tmp_path):
    path = tmp_path / DB_FILE
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()  # rollback journal
    header = WalHeader(path)
    assert header.read() is None
    header.close()
    assert header.read() is None


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_sqlite_locks_survive_other_stores_opening_and_closing(tmp_path):
    """Closing any descriptor of a file drops the process's POSIX locks on it: the header
    map of a second store must not take away the first connection's wal-index locks."""
    first = Store(tmp_path / "db")
    shm = tmp_path / "db" / f"{DB_FILE}-shm"
    held = _locks_held_on(shm, os.getpid())
    assert held, "SQLite holds a lock on the -shm file while a connection is open"
    for _ in range(3):
        other = Store(tmp_path / "db")
        other.data_version()
        other.close()
    assert _locks_held_on(shm, os.getpid()) == held
    first.close()


def test_a_database_reopened_after_its_shm_file_was_removed_still_sees_commits(tmp_path):
    store = Store(tmp_path / "db")
    store.close()  # the last connection removes the -wal and -shm files
    reader, writer = Store(tmp_path / "db"), Store(tmp_path / "db")
    before = reader.data_version()
    with writer.write() as c:
        c.execute("INSERT INTO meta VALUES ('c', 'x')")
    assert reader.data_version() != before
    reader.close(), writer.close()
