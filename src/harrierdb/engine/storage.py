"""The transactional store under a database path: SQLite in WAL mode.

Rows are the source of truth. Each collection has a rows table (one row per entity: a
sequence number, the primary key, the partition, one column per scalar field and one BLOB per
vector field) and a deletes log. Sequence numbers only grow, so another process (or a cache in
this one) catches up by reading rows with ``seq`` above what it has and deletes with ``id``
above what it has; ``epoch`` changes when compaction rewrites history and a full reload is due.

SQLite gives crash safety (a committed transaction survives a killed process; ``flush`` adds
fsync for power loss), one writer beside many readers across processes, and atomic batches.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harrierdb.engine.wal_header import HEADER_BYTES, WalHeader
from harrierdb.errors import FormatVersionError, StorageError
from harrierdb.schema import DYNAMIC_FIELD, CollectionSchema, DataType, FieldSchema, RowBatch
from harrierdb.vectors import codec_for

FORMAT_VERSION = 2  # 2: vectors stored a batch per row
DB_FILE = "harrier.sqlite"
BUSY_TIMEOUT_S = 30.0

_SQL_TYPES = {
    DataType.BOOL: "INTEGER", DataType.INT8: "INTEGER", DataType.INT16: "INTEGER",
    DataType.INT32: "INTEGER", DataType.INT64: "INTEGER", DataType.FLOAT: "REAL",
    DataType.DOUBLE: "REAL", DataType.VARCHAR: "TEXT", DataType.JSON: "TEXT", DataType.ARRAY: "TEXT",
}


@dataclass
class CollectionRecord:
    """A collection as the catalog knows it."""

    id: int
    name: str
    schema: CollectionSchema
    properties: dict
    created: float

    @property
    def rows_table(self) -> str:
        return f"rows_{self.id}"

    @property
    def deletes_table(self) -> str:
        return f"deletes_{self.id}"

    def vector_table(self, i: int) -> str:
        """Chunks of the i-th vector field: one row per write, holding the whole batch."""
        return f"vectors_{self.id}_{i}"

    @property
    def vector_tables(self) -> list[str]:
        return [self.vector_table(i) for i in range(len(self.schema.vector_fields))]


@dataclass
class VectorChunk:
    """The vectors of one write: row sequence numbers and the raw array bytes."""

    seqs: np.ndarray
    data: bytes


@dataclass
class Changes:
    """What was committed to a collection after a reader's position."""

    epoch: int
    rows: list[tuple]                        # (seq, pk, partition, *scalar columns)
    vector_chunks: list[list[VectorChunk]]   # per vector field, chunks holding those rows
    deleted_seqs: list[int]
    last_seq: int
    last_delete: int


def scalar_columns(schema: CollectionSchema) -> list[FieldSchema | None]:
    """Scalar fields in column order; ``None`` stands for the dynamic-field column."""
    cols: list[FieldSchema | None] = list(schema.scalar_fields)
    if schema.enable_dynamic_field:
        cols.append(None)
    return cols


def _is_json_column(f: FieldSchema | None) -> bool:
    return f is None or f.dtype in (DataType.JSON, DataType.ARRAY)


class Store:
    """One SQLite database file under the database directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(
                f"{str(self.root)!r} is a file, not a HarrierDB database directory; "
                "pick a new path (a Milvus Lite file cannot be opened by HarrierDB)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(
                self.root / DB_FILE, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._init_catalog()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open database at {str(self.root)!r}: {exc}") from None
        self._wal_header = WalHeader(self.root / DB_FILE)  # after the connection made the -shm file
        self._version_cursor = self.conn.cursor()  # conn.execute would make one per call
        self._version_seen: tuple[bytes, int] | None = None  # (wal-index header, data_version)

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it commits or none of it does."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several reads."""
        with self.lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's change counter). Asked of
        SQLite only when the wal-index header moved since the last answer (``wal_header``).

        The unchanged case takes no lock: ``_version_seen`` is replaced whole, and pairing a
        header with a version read after it is safe (a commit between the two shows as a
        header that differs next time)."""
        seen = self._version_seen
        if seen is not None and self._wal_header.map[:HEADER_BYTES] == seen[0]:
            return seen[1]  # the header that version was read after: no commit since
        header = self._wal_header.read()  # read first: a commit after it shows next time
        with self.lock:
            version = self._version_cursor.execute("PRAGMA data_version").fetchone()[0]
            self._version_seen = None if header is None else (header, version)
            return version

    # -- catalog ---------------------------------------------------------------------------
    def _init_catalog(self) -> None:
        with self.write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = c.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
                c.execute("INSERT INTO meta VALUES ('catalog_version', '0')")
            elif row[0] != str(FORMAT_VERSION):
                raise FormatVersionError(
                    f"database at {str(self.root)!r} has on-disk format {row[0]!r}; this HarrierDB "
                    f"reads format {FORMAT_VERSION}. Upgrade HarrierDB, or export with the version that wrote it")
            c.execute("""CREATE TABLE IF NOT EXISTS collections (
                id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, schema TEXT NOT NULL,
                properties TEXT NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,
                next_auto_id INTEGER NOT NULL DEFAULT 1, last_seq INTEGER NOT NULL DEFAULT 0,
                created REAL NOT NULL)""")
            c.execute("""CREATE TABLE IF NOT EXISTS partitions (
                collection_id INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (collection_id, name))""")
            c.execute("""CREATE TABLE IF NOT EXISTS vector_stats (
                collection_id INTEGER NOT NULL, field TEXT NOT NULL, first_seq INTEGER NOT NULL,
                n INTEGER NOT NULL, created REAL NOT NULL, summary TEXT NOT NULL,
                PRIMARY KEY (collection_id, field, first_seq))""")
            c.execute("""CREATE TABLE IF NOT EXISTS indexes (
                collection_id INTEGER NOT NULL, name TEXT NOT NULL, field TEXT NOT NULL,
                params TEXT NOT NULL, PRIMARY KEY (collection_id, name))""")

    def catalog_version(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT value FROM meta WHERE key='catalog_version'").fetchone()[0])

    def _bump_catalog(self, c: sqlite3.Connection) -> None:
        c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='catalog_version'")

    def load_collections(self) -> dict[str, CollectionRecord]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT id, name, schema, properties, created FROM collections").fetchall()
        return {
            name: CollectionRecord(cid, name, CollectionSchema.from_dict(json.loads(schema)),
                                   json.loads(props), created)
            for cid, name, schema, props, created in rows
        }

    def create_collection(self, name: str, schema: CollectionSchema, properties: dict,
                          partitions: list[str]) -> None:
        with self.write() as c:
            cur = c.execute(
                "INSERT INTO collections (name, schema, properties, created) VALUES (?, ?, ?, ?)",
                (name, json.dumps(schema.to_dict()), json.dumps(properties), time.time()))
            cid = cur.lastrowid
            pk = schema.primary_field
            pk_type = "INTEGER" if pk.dtype is DataType.INT64 else "TEXT"
            cols = [f"c{i} {_SQL_TYPES.get(f.dtype, 'TEXT') if f else 'TEXT'}"
                    for i, f in enumerate(scalar_columns(schema))]
            c.execute(f"""CREATE TABLE rows_{cid} (seq INTEGER PRIMARY KEY,
                pk {pk_type} NOT NULL UNIQUE, part TEXT NOT NULL{''.join(', ' + x for x in cols)})""")
            c.execute(f"CREATE TABLE deletes_{cid} (id INTEGER PRIMARY KEY, row_seq INTEGER NOT NULL)")
            # Vectors are stored a batch per row: reading 100k of them back is a few large
            # blobs instead of 100k small ones, which keeps reopening fast.
            for i, _ in enumerate(schema.vector_fields):
                c.execute(f"""CREATE TABLE vectors_{cid}_{i} (first_seq INTEGER PRIMARY KEY,
                    last_seq INTEGER NOT NULL, seqs BLOB NOT NULL, data BLOB NOT NULL)""")
                c.execute(f"CREATE INDEX vectors_{cid}_{i}_last ON vectors_{cid}_{i} (last_seq)")
            c.executemany("INSERT INTO partitions VALUES (?, ?)", [(cid, p) for p in partitions])
            self._bump_catalog(c)

    def drop_collection(self, record: CollectionRecord) -> None:
        with self.write() as c:
            c.execute(f"DROP TABLE IF EXISTS {record.rows_table}")
            c.execute(f"DROP TABLE IF EXISTS {record.deletes_table}")
            for table in record.vector_tables:
                c.execute(f"DROP TABLE IF EXISTS {table}")
            for table in ("partitions", "indexes", "vector_stats"):
                c.execute(f"DELETE FROM {table} WHERE collection_id=?", (record.id,))
            c.execute("DELETE FROM collections WHERE id=?", (record.id,))
            self._bump_catalog(c)

    def rename_collection(self, record: CollectionRecord, new_name: str) -> None:
        with self.write() as c:
            c.execute("UPDATE collections SET name=? WHERE id=?", (new_name, record.id))
            self._bump_catalog(c)

    def set_properties(self, record: CollectionRecord, properties: dict) -> None:
        with self.write() as c:
            c.execute("UPDATE collections SET properties=? WHERE id=?",
                      (json.dumps(properties), record.id))
            self._bump_catalog(c)

    def update_properties(self, c: sqlite3.Connection, record: CollectionRecord, properties: dict) -> None:
        """Change a collection's properties inside the caller's write transaction."""
        c.execute("UPDATE collections SET properties=? WHERE id=?", (json.dumps(properties), record.id))
        self._bump_catalog(c)

    def add_vector_stats(self, c: sqlite3.Connection, record: CollectionRecord, field: str,
                         first_seq: int, n: int, summary: dict) -> None:
        """Record one inserted batch's summary statistics (for drift monitoring)."""
        c.execute("INSERT OR REPLACE INTO vector_stats VALUES (?, ?, ?, ?, ?, ?)",
                  (record.id, field, first_seq, n, time.time(), json.dumps(summary)))

    def vector_stats(self, record: CollectionRecord, field: str) -> list[dict]:
        """Per-batch summaries of a vector field, oldest first."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT first_seq, n, created, summary FROM vector_stats WHERE collection_id=? AND field=? "
                "ORDER BY first_seq", (record.id, field)).fetchall()
        return [{"first_seq": f, "count": n, "created": t, "summary": json.loads(s)} for f, n, t, s in rows]

    def partitions(self, record: CollectionRecord) -> list[str]:
        with self.lock:
            return [r[0] for r in self.conn.execute(
                "SELECT name FROM partitions WHERE collection_id=? ORDER BY rowid", (record.id,))]

    def create_partition(self, record: CollectionRecord, name: str) -> None:
        with self.write() as c:
            c.execute("INSERT OR IGNORE INTO partitions VALUES (?, ?)", (record.id, name))
            self._bump_catalog(c)

    def drop_partition(self, record: CollectionRecord, name: str) -> None:
        """Drop a partition and the rows in it, logging their deletion for other readers."""
        with self.write() as c:
            seqs = [r[0] for r in c.execute(
                f"SELECT seq FROM {record.rows_table} WHERE part=?", (name,))]
            self._log_deletes(c, record, seqs)
            c.execute(f"DELETE FROM {record.rows_table} WHERE part=?", (name,))
            c.execute("DELETE FROM partitions WHERE collection_id=? AND name=?", (record.id, name))
            self._bump_catalog(c)

    def indexes(self, record: CollectionRecord) -> dict[str, tuple[str, dict]]:
        """index name -> (field, params)."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT name, field, params FROM indexes WHERE collection_id=?", (record.id,)).fetchall()
        return {name: (field, json.loads(params)) for name, field, params in rows}

    def create_index(self, record: CollectionRecord, name: str, field: str, params: dict) -> None:
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO indexes VALUES (?, ?, ?, ?)",
                      (record.id, name, field, json.dumps(params)))
            self._bump_catalog(c)

    def drop_index(self, record: CollectionRecord, name: str) -> None:
        with self.write() as c:
            c.execute("DELETE FROM indexes WHERE collection_id=? AND name=?", (record.id, name))
            self._bump_catalog(c)

    # -- rows ------------------------------------------------------------------------------
    def insert(self, c: sqlite3.Connection, record: CollectionRecord, batch: RowBatch,
               partition: str, first_seq: int) -> None:
        """Append a validated batch inside the caller's write transaction."""
        schema = record.schema
        scols = scalar_columns(schema)
        names = [DYNAMIC_FIELD if f is None else f.name for f in scols]
        json_cols = [_is_json_column(f) for f in scols]
        params = []
        for i, (pk, scalars) in enumerate(zip(batch.pks, batch.scalars)):
            values = [
                (json.dumps(v) if v is not None else None) if is_json else v
                for v, is_json in zip((scalars.get(n) for n in names), json_cols)
            ]
            params.append((first_seq + i, pk, partition, *values))
        n_cols = 3 + len(scols)
        c.executemany(
            f"INSERT INTO {record.rows_table} VALUES ({', '.join('?' * n_cols)})", params)
        seqs = np.arange(first_seq, first_seq + len(batch), dtype="<i8")
        for i, f in enumerate(schema.vector_fields):
            self._write_chunk(c, record.vector_table(i), seqs, codec_for(f.dtype).to_bytes(batch.vectors[f.name]))

    @staticmethod
    def _write_chunk(c: sqlite3.Connection, table: str, seqs: np.ndarray, data: bytes) -> None:
        c.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?)",
                  (int(seqs[0]), int(seqs[-1]), seqs.astype("<i8").tobytes(), data))

    def allocate_seqs(self, c: sqlite3.Connection, record: CollectionRecord, n: int) -> int:
        """Reserve ``n`` sequence numbers inside the write transaction; returns the first."""
        (last,) = c.execute("SELECT last_seq FROM collections WHERE id=?", (record.id,)).fetchone()
        c.execute("UPDATE collections SET last_seq=? WHERE id=?", (last + n, record.id))
        return last + 1

    def existing_pks(self, c: sqlite3.Connection, record: CollectionRecord, pks: list) -> dict:
        """pk -> seq for those of ``pks`` present in the collection."""
        found: dict = {}
        for start in range(0, len(pks), 500):
            chunk = pks[start:start + 500]
            found.update(c.execute(
                f"SELECT pk, seq FROM {record.rows_table} WHERE pk IN ({','.join('?' * len(chunk))})",
                chunk).fetchall())
        return found

    def delete_seqs(self, c: sqlite3.Connection, record: CollectionRecord, seqs: list[int]) -> None:
        """Delete rows by sequence number and log it, inside the caller's transaction."""
        self._log_deletes(c, record, seqs)
        for start in range(0, len(seqs), 500):
            chunk = seqs[start:start + 500]
            c.execute(f"DELETE FROM {record.rows_table} WHERE seq IN ({','.join('?' * len(chunk))})", chunk)

    def _log_deletes(self, c: sqlite3.Connection, record: CollectionRecord, seqs: list[int]) -> None:
        c.executemany(f"INSERT INTO {record.deletes_table} (row_seq) VALUES (?)", [(s,) for s in seqs])

    def take_auto_ids(self, c: sqlite3.Connection, record: CollectionRecord, n: int) -> range:
        """Reserve ``n`` auto ids: time-based like Milvus, and strictly increasing."""
        (nxt,) = c.execute("SELECT next_auto_id FROM collections WHERE id=?", (record.id,)).fetchone()
        start = max(nxt, time.time_ns() >> 12)
        c.execute("UPDATE collections SET next_auto_id=? WHERE id=?", (start + n, record.id))
        return range(start, start + n)

    def changes_since(self, c: sqlite3.Connection, record: CollectionRecord, last_seq: int,
                      last_delete: int) -> Changes:
        """Rows and deletes committed after the given position (call inside a transaction)."""
        (epoch,) = c.execute("SELECT epoch FROM collections WHERE id=?", (record.id,)).fetchone()
        rows = c.execute(
            f"SELECT * FROM {record.rows_table} WHERE seq > ? ORDER BY seq", (last_seq,)).fetchall()
        dels = c.execute(
            f"SELECT id, row_seq FROM {record.deletes_table} WHERE id > ? ORDER BY id",
            (last_delete,)).fetchall()
        chunks = [
            [VectorChunk(np.frombuffer(seqs, dtype="<i8"), data) for seqs, data in c.execute(
                f"SELECT seqs, data FROM {table} WHERE last_seq > ? ORDER BY first_seq", (last_seq,))]
            for table in record.vector_tables
        ]
        return Changes(
            epoch=epoch, rows=rows, vector_chunks=chunks, deleted_seqs=[s for _, s in dels],
            last_seq=rows[-1][0] if rows else last_seq, last_delete=dels[-1][0] if dels else last_delete)

    def last_delete_id(self, c: sqlite3.Connection, record: CollectionRecord) -> int:
        return c.execute(f"SELECT COALESCE(MAX(id), 0) FROM {record.deletes_table}").fetchone()[0]

    def epoch(self, record: CollectionRecord) -> int:
        with self.lock:
            return self.conn.execute("SELECT epoch FROM collections WHERE id=?", (record.id,)).fetchone()[0]

    def count(self, record: CollectionRecord, partition: str | None = None) -> int:
        with self.lock:
            if partition is None:
                return self.conn.execute(f"SELECT COUNT(*) FROM {record.rows_table}").fetchone()[0]
            return self.conn.execute(
                f"SELECT COUNT(*) FROM {record.rows_table} WHERE part=?", (partition,)).fetchone()[0]

    # -- maintenance -----------------------------------------------------------------------
    def compact(self, record: CollectionRecord) -> None:
        """Forget the deletes log (readers reload on the new epoch) and reclaim free pages."""
        with self.write() as c:
            live = np.array([r[0] for r in c.execute(f"SELECT seq FROM {record.rows_table} ORDER BY seq")],
                            dtype=np.int64)
            for table, f in zip(record.vector_tables, record.schema.vector_fields):
                self._rewrite_chunks(c, table, live, f)
            c.execute(f"DELETE FROM {record.deletes_table}")
            c.execute("UPDATE collections SET epoch = epoch + 1 WHERE id=?", (record.id,))
        with self.lock:
            self.conn.execute("VACUUM")

    def _rewrite_chunks(self, c: sqlite3.Connection, table: str, live: np.ndarray, f: FieldSchema) -> None:
        """Rewrite a vector table without the rows that were deleted, chunk by chunk."""
        codec = codec_for(f.dtype)
        chunks = c.execute(f"SELECT seqs, data FROM {table} ORDER BY first_seq").fetchall()
        c.execute(f"DELETE FROM {table}")
        for seqs_blob, data in chunks:
            seqs = np.frombuffer(seqs_blob, dtype="<i8")
            keep = np.flatnonzero(np.isin(seqs, live))
            if len(keep):
                batch = codec.take(codec.from_bytes(data, len(seqs), f.dim), keep)
                self._write_chunk(c, table, seqs[keep], codec.to_bytes(batch))

    def flush(self) -> None:
        """Checkpoint the WAL into the database file and fsync it: durable against power loss."""
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(FULL)")

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
            self._version_seen = None  # before the header's map goes
            self._wal_header.close()  # after the connection: see wal_header on POSIX locks

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def decode_json(text: Any) -> Any:
    return None if text is None else json.loads(text)
