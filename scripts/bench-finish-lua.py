#!/usr/bin/env python3
"""Redis's own time for finish.lua per outcome (docs/benchmarks.md, fifth session).

Usage: [N=outcomes] scripts/bench-finish-lua.py PORT ROUNDS NAME=FILE[@8|@g] [NAME=FILE[@8|@g] ...]
`@g`: the script takes groups of outcomes (kind, latency bucket, n, then 6 values per outcome; since
the seventh session: one group per call here, every job a `noop` of one bucket); `@8`: 8 values per
outcome (the job's kind and latency bucket after the 6 of before; the sixth session's); otherwise 6.
Each FILE is a whole finish script as the broker sends it (for today's tree:
`cat crates/broker/src/lua/{workflow,history,finish}.lua > /tmp/new.lua`; for an older commit,
`git show REV:crates/broker/src/lua/finish.lua`). Needs a redis-server of its own on PORT (it is
flushed) and `pip install redis`. 60,000 RUNNING records shaped as fetch.lua leaves them are
finished as successes in script calls of 50; prints the median microseconds per outcome.
"""
import os
import statistics
import sys
import time

import redis

N, BATCH = int(os.environ.get("N", 60000)), 50
port, rounds = int(sys.argv[1]), int(sys.argv[2])
variants = [a.split("=", 1) for a in sys.argv[3:]]
variants = [(name, path.split("@")[0], path.rsplit("@", 1)[-1] if "@" in path else "6")
            for name, path in variants]
r = redis.Redis(port=port)
kp = "{bench:q:default}:"
keys = [kp + k for k in ("leased", "scheduled", "dead", "stats", "pending")]


def setup():
    r.flushall()
    p = r.pipeline(transaction=False)
    now = int(time.time() * 1000)
    for i in range(N):
        p.hset(kp + "t:%d" % (10**15 + i), mapping={
            "kind": "noop", "queue": "default", "args": "{}", "state": "RUNNING",
            "attempts": 1, "max_attempts": 3, "enqueued_at": now - 5000 + i // 20,
            "started_at": now, "worker": "w-bench-host-12345", "token": i + 1, "queued": ""})
        p.zadd(keys[0], {str(10**15 + i): now + 30000})
        if i % 1000 == 999:
            p.execute()
    p.execute()


results = {name: [] for name, _, _ in variants}
for _ in range(rounds):
    for name, path, layout in variants:
        sha = r.script_load(open(path).read())
        setup()
        r.config_resetstat()
        now = int(time.time() * 1000)
        for s in range(0, N, BATCH):
            args = [now, 3600, 86400, kp]
            if layout == "g":
                args += ["noop", 49, min(N, s + BATCH) - s]
            for i in range(s, min(N, s + BATCH)):
                args += [str(10**15 + i), i + 1, "S", "null", "", 0]
                if layout == "8":
                    args += ["noop", 49]
            out = r.evalsha(sha, len(keys), *keys, *args)
            assert int(out[0]) == min(N, s + BATCH) - s, out
        results[name].append(r.info("commandstats")["cmdstat_evalsha"]["usec"] / N)
for name, xs in results.items():
    print(f"{name}: median {statistics.median(xs):.2f} us per outcome ({', '.join(f'{x:.2f}' for x in xs)})")
