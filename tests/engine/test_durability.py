"""Durability and multi-process behaviour of the embedded store, tested with real processes.

* A writer killed with SIGKILL at random moments never loses a write whose call returned, never
  half-applies a batch, and leaves a database that opens and searches.
* A reader process sees a writer's rows grow monotonically and catches up without reopening;
  two writers on one path are serialised by SQLite and both succeed.
* A batch that fails validation (or a key check inside the transaction) writes nothing.

Writers are helper scripts written into ``tmp_path`` and run with ``sys.executable``. They
report to a file (not a pipe, so a burst of output never blocks them and what they flushed
survives SIGKILL). Protocol of the crash writer: ``B <op> <json>`` is flushed *before* each
call and ``A`` after it returns, so at a kill everything acknowledged must be in the database,
and the one call in flight (a ``B`` without its ``A``) must be there entirely or not at all.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harrierdb import DataType, MilvusClient

DIM = 16
COLL = "durable"
L2 = {"metric_type": "L2"}

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL and fork/exec")

# Shared by the parent and the helper scripts: the schema and a deterministic vector per
# (id, val), so any process can recompute what a row's vector must be.
COMMON = r'''
import json, os, sys, time
import numpy as np
from harrierdb import DataType, MilvusClient

DIM = 16
COLL = "durable"


def vecs(ids, vals):
    """Pseudo-random vectors in [-0.5, 0.5) from a 64-bit mix of (id, val, dim index)."""
    ids = np.asarray(ids, dtype=np.int64).astype(np.uint64)[:, None]
    vals = np.asarray(vals, dtype=np.int64).astype(np.uint64)[:, None]
    x = ids * np.uint64(DIM) + np.arange(DIM, dtype=np.uint64)[None, :]
    x = x * np.uint64(0x9E3779B97F4A7C15) + vals * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(1)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(29)
    return ((x >> np.uint64(40)).astype(np.float64) / float(1 << 24) - 0.5).astype(np.float32)


def rows(ids, vals):
    v = vecs(ids, vals)
    return [{"id": int(i), "val": int(x), "vec": v[k]} for k, (i, x) in enumerate(zip(ids, vals))]


def say(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.002)
'''

CRASH_WRITER = COMMON + r'''
import random

db, run, seed, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
wait_for(go)       # started early, so interpreter start-up overlaps the parent's checks
with open(go) as f:
    mine = json.load(f)    # some live ids of earlier runs, which other readers have cached
client = MilvusClient(db)
if rng.random() < 0.5:
    # Half the runs keep a loaded cache, so writes also take the catch-up path.
    client.query(COLL, output_fields=["count(*)"])
say("READY")
next_id = run * 1_000_000
serial = 0
while True:
    r = rng.random()
    serial += 1
    if r < 0.2 and mine:
        ids = rng.sample(mine, min(len(mine), rng.randint(1, 6)))
        if rng.random() < 0.5:  # upsert may also insert a fresh key
            ids.append(next_id)
            mine.append(next_id)
            next_id += 1
        vals = [run * 100_000 + serial] * len(ids)
        say("B upsert", json.dumps([ids, vals]))
        res = client.upsert(COLL, rows(ids, vals))
        assert res["upsert_count"] == len(ids), res
    elif r < 0.55 and mine:   # deletes keep the table small enough to check fully each time
        ids = rng.sample(mine, min(len(mine), rng.randint(1, 6)))
        for i in ids:
            mine.remove(i)
        say("B delete", json.dumps([ids, []]))
        res = client.delete(COLL, ids=ids)
        assert res["delete_count"] == len(ids), res
    else:
        n = rng.randint(1, 6)
        ids = list(range(next_id, next_id + n))
        next_id += n
        vals = [run] * n
        say("B insert", json.dumps([ids, vals]))
        res = client.insert(COLL, rows(ids, vals))
        assert res["insert_count"] == n, res
        mine.extend(ids)
    say("A")
'''

BULK_WRITER = COMMON + r'''
db, start, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
go, end, pause = sys.argv[5], sys.argv[6], float(sys.argv[7])
client = MilvusClient(db)
client.query(COLL, output_fields=["count(*)"])   # a loaded cache: writes must catch up with others'
say("READY")
if go != "-":
    wait_for(go)
t0 = time.time()
for b in range(batches):
    ids = list(range(start + b * size, start + (b + 1) * size))
    res = client.insert(COLL, rows(ids, ids))
    assert res["insert_count"] == size
    if b % 10 == 0:
        res = client.search(COLL, [rows([ids[0]], [ids[0]])[0]["vec"]], limit=1, search_params={"metric_type": "L2"})
        assert res[0][0]["id"] == ids[0], res
    if pause:
        time.sleep(pause)
t1 = time.time()
say("WROTE", t0, t1)
if end != "-":
    wait_for(end)
    got = [r["id"] for r in client.query(COLL, output_fields=["id"])]
    count = client.query(COLL, output_fields=["count(*)"])[0]["count(*)"]
    say("VIEW", json.dumps({"count": count, "n": len(got), "unique": len(set(got)), "sum": sum(got)}))
'''

FAILING_WRITER = COMMON + r'''
import numpy as np
from harrierdb.errors import HarrierError

db = sys.argv[1]
client = MilvusClient(db)
client.query(COLL, output_fields=["count(*)"])


def batch(start, n=50):
    ids = list(range(start, start + n))
    return rows(ids, ids)


cases = {}
def bad_last(start, key, value, op="insert", head=()):
    b = list(head) + batch(start)
    if value is KeyError:
        del b[-1][key]
    else:
        b[-1][key] = value
    cases[key + "@" + str(start)] = (op, b)


nan_vec = vecs([0], [0])[0].copy()
nan_vec[3] = np.nan
bad_last(1000, "vec", [0.0] * (DIM - 1))               # short vector
bad_last(2000, "val", "not a number")                  # wrong scalar type
bad_last(3000, "vec", KeyError)                        # missing vector
bad_last(4000, "vec", nan_vec)                         # NaN
bad_last(5000, "id", 0)                                # key already stored: fails inside the transaction
bad_last(6000, "id", 6000)                             # key twice in the batch
bad_last(7000, "vec", [0.0] * (DIM + 1), "upsert", rows(list(range(10)), [-1] * 10))
bad_last(8000, "id", "eight")                          # bad primary key

raised = {}
for name, (op, data) in cases.items():
    try:
        getattr(client, op)(COLL, data)
    except HarrierError as exc:
        raised[name] = type(exc).__name__
    else:
        raised[name] = None
say("FAILED", json.dumps(raised))
sys.stdin.readline()
client.insert(COLL, rows([999], [999]))
say("INSERTED")
sys.stdin.readline()
'''


# -- helpers used by the parent -------------------------------------------------------------
_ns: dict = {}
exec(COMMON, _ns)
vecs = _ns["vecs"]
rows = _ns["rows"]


def make_collection(path: str) -> MilvusClient:
    client = MilvusClient(path)
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("val", DataType.INT64)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection(COLL, schema=schema)  # no index: searches are exact
    return client


def write_script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def spawn(script: Path, out: Path, *args, stdin=None) -> subprocess.Popen:
    with open(out, "wb") as f:
        return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=f,
                                stderr=subprocess.STDOUT, stdin=stdin)


def wait_line(proc: subprocess.Popen, out: Path, prefix: str, timeout: float = 30.0) -> str:
    """Block until ``out`` has a complete line starting with ``prefix``; return it."""
    deadline = time.time() + timeout
    while True:
        for line in out.read_text().split("\n")[:-1]:
            if line.startswith(prefix):
                return line
        if proc.poll() is not None and proc.returncode != 0:
            pytest.fail(f"helper exited with {proc.returncode} before {prefix!r}:\n{out.read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"no {prefix!r} line from helper within {timeout}s:\n{out.read_text()[-3000:]}")
        time.sleep(0.003)


def count_star(client: MilvusClient) -> int:
    return client.query(COLL, output_fields=["count(*)"])[0]["count(*)"]


def snapshot(client: MilvusClient) -> dict[int, int]:
    """id -> val of every row, asserting that no id appears twice."""
    got = client.query(COLL, output_fields=["id", "val"])
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)), f"duplicate ids: {sorted({i for i in ids if ids.count(i) > 1})[:10]}"
    return {r["id"]: r["val"] for r in got}


def apply(state: dict[int, int], op: str, ids: list[int], vals: list[int]) -> dict[int, int]:
    state = dict(state)
    if op == "delete":
        for i in ids:
            state.pop(i, None)
    else:
        state.update(zip(ids, vals))
    return state


def check_search(client: MilvusClient, state: dict[int, int], rng: random.Random) -> None:
    if not state:
        res = client.search(COLL, [vecs([1], [1])[0]], limit=3, search_params=L2)
        assert len(res) == 1 and len(res[0]) == 0
        return
    probe = rng.sample(sorted(state), min(3, len(state)))
    res = client.search(COLL, vecs(probe, [state[i] for i in probe]), limit=3, search_params=L2,
                        output_fields=["val"])
    assert len(res) == len(probe)
    for i, hits in zip(probe, res):
        assert len(hits) == min(3, len(state))
        assert hits[0]["id"] == i and hits[0]["distance"] < 1e-4, (i, hits[0])
        assert hits[0]["entity"]["val"] == state[i]


# -- 1. SIGKILL at random moments ------------------------------------------------------------
N_KILLS = 50


def test_sigkill_never_loses_acknowledged_writes(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    db = str(tmp_path / "crash.db")
    make_collection(db).close()
    watcher = MilvusClient(db)          # a long-lived reader in this process, never reopened
    count_star(watcher)
    script = write_script(tmp_path, "crash_writer.py", CRASH_WRITER)
    state: dict[int, int] = {}
    stats = {"insert": 0, "upsert": 0, "delete": 0, "in_flight_applied": 0, "in_flight_lost": 0}

    spawned: list[subprocess.Popen] = []

    def start(run: int) -> tuple[subprocess.Popen, Path, Path]:
        out, go = tmp_path / f"crash_{run}.out", tmp_path / f"go_{run}"
        spawned.append(spawn(script, out, db, run, rng.randrange(1 << 30), go))
        return spawned[-1], out, go

    try:
        nxt = start(0)
        for run in range(N_KILLS):
            ctx = f"seed={seed} run={run}"
            proc, out, go = nxt
            # Hand the writer some rows of earlier runs to upsert and delete (the parent's long-lived
            # reader has them cached, so it must apply another process's deletes to its cache).
            tmp = go.with_suffix(".tmp")
            tmp.write_text(json.dumps(rng.sample(sorted(state), min(len(state), 200))))
            tmp.replace(go)     # atomically: the writer starts when the file exists
            wait_line(proc, out, "READY")
            time.sleep(rng.uniform(0.05, 0.4))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, f"{ctx}: writer died by itself:\n{out.read_text()[-3000:]}"
            nxt = start(run + 1) if run + 1 < N_KILLS else None

            # Replay the log: acknowledged calls must all be in; the one in flight is all-or-nothing.
            pending = None
            for line in out.read_text().split("\n")[:-1]:   # a torn last line was never acted on
                if line.startswith("B "):
                    assert pending is None, ctx
                    _, op, payload = line.split(" ", 2)
                    pending = (op, *json.loads(payload))
                elif line == "A":
                    state = apply(state, *pending)
                    stats[pending[0]] += 1
                    pending = None

            client = MilvusClient(db)       # a fresh process's view: must open after any kill
            try:
                got = snapshot(client)
                if got != state:
                    assert pending is not None, (
                        f"{ctx}: lost or phantom rows with no call in flight: "
                        f"missing={sorted(set(state) - set(got))[:10]} extra={sorted(set(got) - set(state))[:10]} "
                        f"changed={[i for i in state if i in got and got[i] != state[i]][:10]}")
                    after = apply(state, *pending)
                    assert got == after, (
                        f"{ctx}: the call in flight ({pending[0]} of {len(pending[1])} rows) was half "
                        f"applied, or acknowledged rows were lost: missing={sorted(set(after) - set(got))[:10]} "
                        f"extra={sorted(set(got) - set(after))[:10]}")
                    state = after
                    stats["in_flight_applied"] += 1
                elif pending is not None and apply(state, *pending) != state:
                    stats["in_flight_lost"] += 1
                assert count_star(client) == len(state), ctx
                assert client.get_collection_stats(COLL)["row_count"] == len(state), ctx
                sample = rng.sample(sorted(state), min(20, len(state)))
                fetched = {r["id"]: r for r in client.get(COLL, ids=sample)}
                assert sorted(fetched) == sorted(sample), ctx
                for i in sample:
                    assert fetched[i]["val"] == state[i], ctx
                    np.testing.assert_array_equal(np.asarray(fetched[i]["vec"], np.float32),
                                                  vecs([i], [state[i]])[0])
                check_search(client, state, rng)
            finally:
                client.close()
            # The long-lived reader caught up with inserts, upserts and deletes of a dead process.
            assert snapshot(watcher) == state, ctx
            check_search(watcher, state, rng)
    finally:  # a failed check must not leave the next writer waiting for its go file
        for proc in spawned:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    watcher.close()
    # The kills must have hit a writer at work, with every kind of call acknowledged.
    assert stats["insert"] > N_KILLS and stats["upsert"] > 0 and stats["delete"] > 0, stats
    assert len(state) > 0, stats


# -- 2. several processes on one path ---------------------------------------------------------
def test_reader_process_sees_growing_counts_and_catches_up(tmp_path):
    db = str(tmp_path / "rw.db")
    reader = make_collection(db)
    assert count_star(reader) == 0
    script = write_script(tmp_path, "bulk_writer.py", BULK_WRITER)
    batches, size = 150, 40
    out = tmp_path / "writer.out"
    proc = spawn(script, out, db, 0, batches, size, "-", "-", 0.002)
    wait_line(proc, out, "READY")

    seen: list[int] = []
    rng = np.random.default_rng(0)
    while proc.poll() is None:
        n = count_star(reader)
        stored = reader.get_collection_stats(COLL)["row_count"]
        assert stored >= n, (stored, n)          # the store is never behind the cache
        assert not seen or n >= seen[-1], f"count went down: {seen[-1]} -> {n}"
        assert n % size == 0, f"saw part of a batch: {n}"
        seen.append(n)
        res = reader.search(COLL, rng.standard_normal((2, DIM)), limit=5, search_params=L2)
        assert all(len(h) >= min(5, n) for h in res)   # rows may have arrived since the count
        assert all(0 <= hit["id"] < batches * size for h in res for hit in h)
    assert proc.returncode == 0, out.read_text()[-3000:]
    total = batches * size
    assert any(0 < n < total for n in seen), f"never observed the writer mid-way: {sorted(set(seen))[:5]}"

    # The next call, without reopening, sees everything.
    assert count_star(reader) == total
    assert reader.get_collection_stats(COLL)["row_count"] == total
    last = list(range(total - size, total))
    assert sorted(r["id"] for r in reader.get(COLL, ids=last)) == last
    res = reader.search(COLL, vecs([total - 1], [total - 1]), limit=1, search_params=L2)
    assert res[0][0]["id"] == total - 1 and res[0][0]["distance"] < 1e-4
    assert snapshot(reader) == {i: i for i in range(total)}
    reader.close()


def test_two_writer_processes_are_serialised(tmp_path):
    db = str(tmp_path / "ww.db")
    make_collection(db).close()
    script = write_script(tmp_path, "bulk_writer.py", BULK_WRITER)
    go, end = tmp_path / "go", tmp_path / "end"
    batches, size = 100, 50
    starts = [0, 10_000_000]
    outs = [tmp_path / f"w{k}.out" for k in range(2)]
    procs = [spawn(script, o, db, s, batches, size, go, end, 0.001) for s, o in zip(starts, outs)]
    for p, o in zip(procs, outs):
        wait_line(p, o, "READY")
    go.touch()
    spans = []
    for p, o in zip(procs, outs):
        _, t0, t1 = wait_line(p, o, "WROTE", timeout=60).split()
        spans.append((float(t0), float(t1)))
    # Both were writing at the same time (otherwise this test proves nothing).
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans
    end.touch()
    expected = {i: i for s in starts for i in range(s, s + batches * size)}
    views = []
    for p, o in zip(procs, outs):
        views.append(json.loads(wait_line(p, o, "VIEW").split(" ", 1)[1]))
        assert p.wait(timeout=30) == 0, o.read_text()[-3000:]
    for v in views:   # each writer's own in-memory view, after interleaved writes, is exact
        assert v == {"count": len(expected), "n": len(expected), "unique": len(expected),
                     "sum": sum(expected)}, v
    client = MilvusClient(db)
    assert count_star(client) == 2 * batches * size
    assert client.get_collection_stats(COLL)["row_count"] == 2 * batches * size
    assert snapshot(client) == expected
    check_search(client, expected, random.Random(1))
    client.close()


# -- 3. a failed call writes nothing ----------------------------------------------------------
def test_failed_insert_writes_nothing_seen_from_another_process(tmp_path):
    db = str(tmp_path / "fail.db")
    client = make_collection(db)
    client.insert(COLL, rows(list(range(10)), list(range(10))))
    before = snapshot(client)
    script = write_script(tmp_path, "failing_writer.py", FAILING_WRITER)
    out = tmp_path / "fail.out"
    proc = spawn(script, out, db, stdin=subprocess.PIPE)
    try:
        raised = json.loads(wait_line(proc, out, "FAILED").split(" ", 1)[1])
        assert all(raised.values()), f"these calls did not raise: {[k for k, v in raised.items() if not v]}"
        assert raised["id@5000"] == raised["id@6000"] == "PrimaryKeyError", raised

        # Seen from this process (a cache loaded before the attempts, and a fresh client) while
        # the failing writer is still alive: nothing of any batch, the upserted rows untouched.
        fresh = MilvusClient(db)
        for c in (client, fresh):
            assert snapshot(c) == before
            assert count_star(c) == 10 and c.get_collection_stats(COLL)["row_count"] == 10
            assert c.get(COLL, ids=[1000, 1049, 5000, 5048, 7000, 8000]) == []
        fresh.close()
        # The failed calls left no transaction open: this process can write at once.
        t = time.time()
        client.insert(COLL, rows([500], [500]))
        assert time.time() - t < 5
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        wait_line(proc, out, "INSERTED")   # ... and so can the writer that failed
        assert snapshot(client) == {**before, 500: 500, 999: 999}
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0, out.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    client.close()
