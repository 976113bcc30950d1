#!/usr/bin/env python3
"""Redis's own time for fetch.lua per leased job (docs/benchmarks.md, sixth session).

Usage: scripts/bench-fetch-lua.py PORT ROUNDS NAME=FILE [NAME=FILE ...]
Each FILE is fetch.lua of some commit (`git show REV:crates/broker/src/lua/fetch.lua`). Needs a
redis-server of its own on PORT (it is flushed) and `pip install redis`. 60,000 PENDING records
shaped as enqueue.lua writes them are leased in script calls of 50; prints the median
microseconds per leased job.
"""
import statistics
import sys
import time

import redis

N, BATCH = 60000, 50
port, rounds = int(sys.argv[1]), int(sys.argv[2])
variants = [a.split("=", 1) for a in sys.argv[3:]]
r = redis.Redis(port=port)
kp = "{bench:q:default}:"
keys = [kp + k for k in ("pending", "leased", "inflight:w-bench", "paused", "stats")]


def setup():
    r.flushall()
    p = r.pipeline(transaction=False)
    now = int(time.time() * 1000)
    for i in range(N):
        p.hset(kp + "t:%d" % (10**15 + i), mapping={
            "kind": "noop", "queue": "default", "args": "{}", "state": "PENDING",
            "attempts": 0, "max_attempts": 3, "enqueued_at": now - 5000 + i // 20,
            "queued": "1"})
        p.rpush(keys[0], str(10**15 + i))
        if i % 1000 == 999:
            p.execute()
    p.execute()


results = {name: [] for name, _ in variants}
for _ in range(rounds):
    for name, path in variants:
        sha = r.script_load(open(path).read())
        setup()
        r.config_resetstat()
        now = int(time.time() * 1000)
        leased = 0
        while leased < N:
            out = r.evalsha(sha, len(keys), *keys, now, 30000, BATCH, "w-bench", kp)
            assert out, "nothing leased"
            leased += BATCH
        results[name].append(r.info("commandstats")["cmdstat_evalsha"]["usec"] / N)
for name, xs in results.items():
    print(f"{name}: median {statistics.median(xs):.2f} us per job ({', '.join(f'{x:.2f}' for x in xs)})")
