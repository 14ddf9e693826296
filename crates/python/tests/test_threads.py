"""One store shared by many Python threads."""

from __future__ import annotations

import threading

import bitcask


def test_threads_writing_and_reading_one_store_lose_nothing(path):
    store = bitcask.open(path, sync="never")
    threads, per_thread = 8, 500
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                key = f"t{t}:{i}"
                store[key] = str(i)
                assert store[key] == str(i).encode()
                if i % 10 == 0:
                    assert len(list(store.keys(f"t{t}:", limit=5))) <= 5
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert len(store) == threads * per_thread
    store.close()
    with bitcask.open(path) as again:
        assert len(again) == threads * per_thread


def test_concurrent_conditional_increments_serialize(path):
    store = bitcask.open(path, sync="never")
    store["n"] = "0"

    def increment(times: int) -> None:
        done = 0
        while done < times:
            current = store.get_versioned("n")
            try:
                store.put("n", str(int(current.value) + 1), if_version=current.version)
                done += 1
            except bitcask.ConditionFailed:
                continue

    workers = [threading.Thread(target=increment, args=(200,)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert store["n"] == b"800"
    store.close()


def test_closing_while_other_threads_use_the_store_raises_closed_error_not_a_crash(path):
    store = bitcask.open(path, sync="never")
    stop = threading.Event()
    outcomes: list[str] = []

    def hammer(t: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                store[f"{t}:{i}"] = "v"
                store.get(f"{t}:{i}")
                i += 1
            except bitcask.ClosedError:
                outcomes.append("closed")
                return
            except BaseException as e:  # noqa: BLE001 - reported below
                outcomes.append(repr(e))
                return

    workers = [threading.Thread(target=hammer, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    while len(store) < 200:
        pass
    store.close()
    stop.set()
    for w in workers:
        w.join()
    assert outcomes == ["closed"] * 4
    # Every write acknowledged before the close is there.
    with bitcask.open(path) as again:
        assert len(again) >= 200
