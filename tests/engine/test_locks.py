"""The reader-writer lock around the ANN indexes: readers share, a writer is alone and waits
for the readers inside, readers wait for a writer, and a thread's read lock dies with it."""

import gc
import threading
import time

from harrierdb.engine.locks import ReadWriteLock


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _reader_holding(lock: ReadWriteLock, inside: threading.Event, leave: threading.Event) -> threading.Thread:
    def reader():
        with lock.local.read:
            inside.set()
            leave.wait(5)
    return _in_thread(reader)


def test_readers_share_the_lock():
    lock = ReadWriteLock()
    inside = threading.Barrier(3, timeout=5)

    def reader():
        with lock.local.read:
            inside.wait()  # all three hold the read side at once, or this times out

    threads = [_in_thread(reader) for _ in range(3)]
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)
    assert not inside.broken


def test_a_writer_waits_for_every_reader_inside():
    lock = ReadWriteLock()
    entered = threading.Event()
    insides = [threading.Event(), threading.Event()]
    leaves = [threading.Event(), threading.Event()]
    readers = [_reader_holding(lock, i, lv) for i, lv in zip(insides, leaves)]
    assert all(i.wait(5) for i in insides)

    def writer():
        with lock.write:
            entered.set()

    thread = _in_thread(writer)
    time.sleep(0.05)
    assert not entered.is_set()  # two readers inside
    leaves[0].set()
    time.sleep(0.05)
    assert not entered.is_set()  # one still inside
    leaves[1].set()
    assert entered.wait(5), "the writer did not enter once the last reader left"
    for t in (thread, *readers):
        t.join(5)


def test_readers_wait_while_a_writer_holds_the_lock():
    lock = ReadWriteLock()
    order = []
    registered, go = threading.Event(), threading.Event()

    def known_reader():  # has read before the write: its own lock is among the writer's
        with lock.local.read:
            registered.set()
        go.wait(5)
        with lock.local.read:
            order.append("known reader")

    def new_reader():  # reads for the first time during the write
        with lock.local.read:
            order.append("new reader")

    known = _in_thread(known_reader)
    assert registered.wait(5)
    with lock.write:
        go.set()
        new = _in_thread(new_reader)
        time.sleep(0.05)
        order.append("write done")
    known.join(5)
    new.join(5)
    assert order[0] == "write done" and sorted(order[1:]) == ["known reader", "new reader"]


def test_a_finished_threads_read_lock_is_dropped():
    lock = ReadWriteLock()

    def reader():
        with lock.local.read:
            pass

    before = len(lock.readers)
    threads = [_in_thread(reader) for _ in range(4)]
    for thread in threads:
        thread.join(5)
    del threads
    gc.collect()
    assert len(lock.readers) == before  # the writer does not take locks of threads long gone
    with lock.write:  # and still works
        pass
