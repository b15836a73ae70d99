"""The reader-writer lock around the ANN indexes: readers share, a writer is alone, and a
writer waiting for readers is woken by the last one to leave."""

import threading
import time

from harrierdb.engine.locks import ReadWriteLock


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_readers_share_the_lock():
    lock = ReadWriteLock()
    inside = threading.Barrier(3, timeout=5)

    def reader():
        with lock.read:
            inside.wait()  # all three hold the read side at once, or this times out

    threads = [_in_thread(reader) for _ in range(3)]
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)
    assert not inside.broken


def test_a_waiting_writer_enters_when_the_last_reader_leaves():
    lock = ReadWriteLock()
    entered = threading.Event()
    lock.read.__enter__()
    lock.read.__enter__()

    def writer():
        with lock.write:
            entered.set()

    thread = _in_thread(writer)
    time.sleep(0.05)
    assert not entered.is_set()  # two readers inside
    lock.read.__exit__()
    time.sleep(0.05)
    assert not entered.is_set()  # one still inside
    lock.read.__exit__()
    assert entered.wait(5), "the last reader did not wake the waiting writer"
    thread.join(5)


def test_readers_wait_while_a_writer_holds_the_lock():
    lock = ReadWriteLock()
    order = []
    lock.write.__enter__()

    def reader():
        with lock.read:
            order.append("read")

    thread = _in_thread(reader)
    time.sleep(0.05)
    order.append("write done")
    lock.write.__exit__()
    thread.join(5)
    assert order == ["write done", "read"]
