"""The per-call consistency check: every commit of another connection moves
``Store.data_version``, and nothing else does."""

from harrierdb.engine.storage import Store


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
