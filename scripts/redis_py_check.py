"""redis-py against bitcask's RESP listener, as a Python user of Redis
would use it: the default pipeline (a MULTI/EXEC transaction), the
optimistic-locking pattern (WATCH), setex/getex, scan_iter, and RESP3.
Run by scripts/redis-py-check.sh with the port as the only argument;
any failure raises and exits non-zero."""

import sys

import redis


def main(port: int) -> None:
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    assert r.ping()

    # The default pipeline is a transaction: MULTI ... EXEC.
    pipe = r.pipeline()
    pipe.set("counter", 1).incr("counter").incrby("counter", 5).get("counter")
    assert pipe.execute() == [True, 2, 7, "7"], "transaction pipeline"
    # A pipeline without a transaction too.
    pipe = r.pipeline(transaction=False)
    pipe.set("plain", "x").get("plain")
    assert pipe.execute() == [True, "x"]

    # Optimistic locking: r.transaction retries when a watched key changes.
    calls = []

    def double(p: redis.client.Pipeline) -> None:
        value = int(p.get("counter"))
        if not calls:
            # Another client writes the watched key once: the first
            # EXEC is aborted and redis-py runs this again.
            redis.Redis(host="127.0.0.1", port=port).set("counter", 10)
        calls.append(value)
        p.multi()
        p.set("counter", value * 2)

    r.transaction(double, "counter")
    assert calls == [7, 10], calls
    assert r.get("counter") == "20"
    # A WatchError when the caller does not retry.
    with r.pipeline() as p:
        p.watch("counter")
        r.set("counter", "changed")
        p.multi()
        p.set("counter", "mine")
        try:
            p.execute()
            raise AssertionError("EXEC should have been aborted")
        except redis.WatchError:
            pass
    assert r.get("counter") == "changed"

    # Expiry commands.
    assert r.setex("session", 100, "token")
    assert 99 <= r.ttl("session") <= 100
    assert r.getex("session", persist=True) == "token"
    assert r.ttl("session") == -1
    assert r.getex("session", ex=50) == "token"
    assert 49 <= r.ttl("session") <= 50
    assert r.psetex("brief", 60_000, "v")
    assert r.getset("brief", "w") == "v"

    # scan_iter walks every key once, whatever the page size.
    r.mset({f"scan:{i:03}": str(i) for i in range(250)})
    found = list(r.scan_iter(match="scan:*", count=40))
    assert sorted(found) == [f"scan:{i:03}" for i in range(250)], len(found)

    # Other string commands through redis-py's own argument handling.
    assert r.msetnx({"nx1": "1", "nx2": "2"}) is True
    assert r.msetnx({"nx2": "x", "nx3": "3"}) is False
    assert r.incrbyfloat("float", 2.5) == 2.5
    assert r.setrange("range", 2, "ab") == 4
    assert r.setbit("bits", 7, 1) == 0 and r.bitcount("bits") == 1
    assert r.lcs("nx1", "nx2") == ""
    assert r.rename("nx1", "renamed") is True and r.get("renamed") == "1"
    assert r.copy("renamed", "copied") is True
    assert r.expire("copied", 100, gt=True) is False
    assert r.object("encoding", "renamed") == "int"

    # RESP3.
    r3 = redis.Redis(host="127.0.0.1", port=port, protocol=3, decode_responses=True)
    assert r3.set("three", "3")
    assert r3.get("three") == "3"
    assert r3.get("absent") is None
    pipe = r3.pipeline()
    pipe.incr("three").get("three")
    assert pipe.execute() == [4, "4"]
    assert r3.ttl("three") == -1
    print("redis-py", redis.__version__, "against bitcask: ok")


if __name__ == "__main__":
    main(int(sys.argv[1]))
