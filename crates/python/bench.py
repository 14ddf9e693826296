"""Side-by-side benchmark of bitcask's Python package against the stores a
Python user would otherwise pick, in one run on one machine.

    python crates/python/bench.py [--keys 1000000] [--threads 4] [--only NAME ...]

Each store gets the same work: N keys of 16 bytes with 100-byte values,
filled in order, then N random overwrites (a random fill), N random gets of
present keys, N gets of missing keys, from one thread; then N random gets
split over T threads. Every call is one operation through the store's own
per-key API (no batching), with durability left to the operating system
(no fsync per write) for every store:

- bitcask: `store[key] = value`, `store.get(key)`; `sync="never"`.
- lmdb (py-lmdb): one write transaction per put (`sync=False`,
  `map_size` 4 GiB); gets through one long-lived read transaction per
  thread (lmdb's fastest way to read).
- rocksdict (RocksDB): `db[key] = value`, `db.get(key)`; WAL without fsync
  (its default).
- sqlite3 (WAL, `synchronous=OFF`, one `kv(key BLOB PRIMARY KEY, value
  BLOB) WITHOUT ROWID` table): one autocommit statement per put; a
  connection per thread.
- dbm.gnu where the interpreter has it.
- seedpy: a pure-Python store as the seed (bitcaskpy) built it, an
  append-only log and a dict from key to offset (the seed's code is not in
  this repository; this follows its README's description).

Missing packages are skipped with a note. Results are operations per
second; docs/BENCHMARKS.md ("Python package") records a run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional

VALUE = b"v" * 100


def key_of(i: int) -> bytes:
    return b"key:%012d" % i  # 16 bytes


class Bench:
    """One store's adapter: open, put, get, close, and a per-thread reader."""

    name = "?"

    def open(self, path: str) -> None: ...
    def put(self, key: bytes, value: bytes) -> None: ...
    def get(self, key: bytes) -> Optional[bytes]: ...
    def reader(self) -> Callable[[bytes], Optional[bytes]]:
        return self.get
    def close(self) -> None: ...


class BitcaskBench(Bench):
    name = "bitcask"

    def open(self, path):
        import bitcask

        self.store = bitcask.open(path, sync="never")
        self.put = self.store.__setitem__
        self.get = self.store.get

    def close(self):
        self.store.close()


class LmdbBench(Bench):
    name = "lmdb"

    def open(self, path):
        import lmdb

        self.env = lmdb.open(path, map_size=4 << 30, sync=False, metasync=False, max_readers=64)

    def put(self, key, value):
        with self.env.begin(write=True) as txn:
            txn.put(key, value)

    def get(self, key):
        with self.env.begin() as txn:
            return txn.get(key)

    def reader(self):
        txn = self.env.begin(buffers=False)
        return txn.get

    def close(self):
        self.env.close()


class RocksdictBench(Bench):
    name = "rocksdict"

    def open(self, path):
        import rocksdict

        self.db = rocksdict.Rdict(path)
        self.put = self.db.__setitem__
        self.get = self.db.get

    def close(self):
        self.db.close()


class SqliteBench(Bench):
    name = "sqlite3"

    def open(self, path):
        os.makedirs(path, exist_ok=True)
        self.file = os.path.join(path, "kv.sqlite")
        self.local = threading.local()
        con = self.connection()
        con.execute(
            "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID"
        )

    def connection(self) -> sqlite3.Connection:
        con = getattr(self.local, "con", None)
        if con is None:
            con = sqlite3.connect(self.file, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=OFF")
            self.local.con = con
        return con

    def put(self, key, value):
        self.local.con.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    def get(self, key):
        row = self.local.con.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def reader(self):
        con = self.connection()

        def get(key):
            row = con.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else row[0]

        return get

    def close(self):
        self.local.con.close()


class GdbmBench(Bench):
    name = "dbm.gnu"

    def open(self, path):
        import dbm.gnu

        os.makedirs(path, exist_ok=True)
        self.db = dbm.gnu.open(os.path.join(path, "db"), "cf")
        self.put = self.db.__setitem__
        self.get = self.db.get

    def close(self):
        self.db.close()


class SeedPyStore:
    """The seed's design in pure Python: records appended to one log file
    (header: key length, value length), a dict from key to the value's
    offset and length; get seeks and reads."""

    HEADER = struct.Struct("<II")

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self.log = open(os.path.join(path, "data.log"), "a+b")
        self.index: Dict[bytes, tuple] = {}
        self.lock = threading.Lock()

    def put(self, key: bytes, value: bytes) -> None:
        with self.lock:
            self.log.seek(0, os.SEEK_END)
            at = self.log.tell()
            self.log.write(self.HEADER.pack(len(key), len(value)) + key + value)
            self.log.flush()
            self.index[key] = (at + self.HEADER.size + len(key), len(value))

    def get(self, key: bytes) -> Optional[bytes]:
        where = self.index.get(key)
        if where is None:
            return None
        with self.lock:
            self.log.seek(where[0])
            return self.log.read(where[1])

    def close(self) -> None:
        self.log.close()


class SeedBench(Bench):
    name = "seedpy"

    def open(self, path):
        self.store = SeedPyStore(path)
        self.put = self.store.put
        self.get = self.store.get

    def close(self):
        self.store.close()


BENCHES = [BitcaskBench, LmdbBench, RocksdictBench, SqliteBench, GdbmBench, SeedBench]


def timed(ops: int, run: Callable[[], None]) -> float:
    # What earlier phases left dirty is written back first, so that it
    # does not compete with this one.
    os.sync()
    start = time.perf_counter()
    run()
    return ops / (time.perf_counter() - start)


def run_one(bench: Bench, n: int, threads: int, root: str) -> Dict[str, float]:
    path = os.path.join(root, bench.name)
    bench.open(path)
    if isinstance(bench, SqliteBench):
        bench.connection()
    keys = [key_of(i) for i in range(n)]
    order = list(range(n))
    random.Random(7).shuffle(order)
    shuffled = [keys[i] for i in order]
    missing = [b"nokey%011d" % i for i in range(n)]
    put, results = bench.put, {}

    def fill(ks: List[bytes]) -> Callable[[], None]:
        def go() -> None:
            for k in ks:
                put(k, VALUE)

        return go

    results["sequential fill"] = timed(n, fill(keys))
    results["random fill"] = timed(n, fill(shuffled))
    get = bench.reader()

    def gets(ks: List[bytes], read: Callable[[bytes], Optional[bytes]], want: bool) -> None:
        for k in ks:
            if (read(k) is not None) != want:
                raise AssertionError(f"{bench.name}: wrong answer for {k!r}")

    results["random gets"] = timed(n, lambda: gets(shuffled, get, True))
    results["missing gets"] = timed(n, lambda: gets(missing, get, False))

    share = n // threads
    start = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        read = bench.reader()
        part = shuffled[t * share : (t + 1) * share]
        start.wait()
        gets(part, read, True)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    os.sync()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    results[f"random gets, {threads} threads"] = share * threads / (time.perf_counter() - began)
    bench.close()
    shutil.rmtree(path, ignore_errors=True)
    return results


def overhead(n: int, root: str) -> float:
    """Nanoseconds per `store.get` of a present key, minus a Python call of
    a dict's get (the interpreter's own share)."""
    import bitcask

    with bitcask.open(os.path.join(root, "overhead"), sync="never") as store:
        store[b"k"] = VALUE
        get, d = store.get, {b"k": VALUE}
        dict_get = d.get
        best_store = best_dict = float("inf")
        for _ in range(5):
            start = time.perf_counter_ns()
            for _ in range(n):
                get(b"k")
            best_store = min(best_store, (time.perf_counter_ns() - start) / n)
            start = time.perf_counter_ns()
            for _ in range(n):
                dict_get(b"k")
            best_dict = min(best_dict, (time.perf_counter_ns() - start) / n)
    return best_store, best_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--only", nargs="*", help="store names to run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run everything this many times; the table shows each cell's median")
    parser.add_argument("--dir", help="where the stores go (default: a temporary directory)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bitcask-pybench-", dir=args.dir)
    print(f"python {sys.version.split()[0]}, {args.keys:,} keys of 16 B, 100 B values, "
          f"{os.cpu_count()} CPUs", flush=True)
    runs: Dict[str, List[Dict[str, float]]] = {}
    try:
        for round_ in range(1, args.rounds + 1):
            for cls in BENCHES:
                bench = cls()
                if args.only and bench.name not in args.only:
                    continue
                try:
                    result = run_one(bench, args.keys, args.threads, root)
                except ImportError as e:
                    if round_ == 1:
                        print(f"{bench.name}: skipped ({e})", flush=True)
                    continue
                runs.setdefault(bench.name, []).append(result)
                print(f"round {round_} {bench.name}: " + ", ".join(
                    f"{k} {v:,.0f}/s" for k, v in result.items()), flush=True)
        if not args.only or "bitcask" in args.only:
            store_ns, dict_ns = overhead(1_000_000, root)
            print(f"store.get of a present key: {store_ns:.0f} ns a call "
                  f"(a dict's get: {dict_ns:.0f} ns)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = {
        name: {w: statistics.median(r[w] for r in results) for w in results[0]}
        for name, results in runs.items()
    }
    if "bitcask" in table and len(table) > 1:
        print()
        names = list(table)
        print("| workload | " + " | ".join(names) + " |")
        print("| --- |" + " ---: |" * len(names))
        for workload in table["bitcask"]:
            ours = table["bitcask"][workload]
            cells = []
            for name in names:
                v = table[name].get(workload, 0)
                cells.append(f"{v:,.0f}" if name == "bitcask" else f"{v:,.0f} ({ours / v:.2f}x)")
            print(f"| {workload} (ops/s) | " + " | ".join(cells) + " |")
        print("\n(x: bitcask's throughput over that store's)")


if __name__ == "__main__":
    main()
