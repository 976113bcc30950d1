#!/usr/bin/env bash
# Private Redis topologies for `faena-bench --redis-url ...` (docs/benchmarks.md, issue 19).
#
# Usage: scripts/bench-redis.sh start|stop|status [single|cluster|replicated|all]   (default: all)
#
#   single      one redis-server on 127.0.0.1:7100        REDIS_URL=redis://127.0.0.1:7100
#   cluster     three primaries, no replicas, 7101-7103   REDIS_URL=redis+cluster://127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
#   replicated  a primary on 7104 and its replica on 7105 REDIS_URL=redis://127.0.0.1:7104
#               (for FAENA_REDIS_MIN_REPLICAS=1 against 0)
#
# Every server listens on loopback only, without persistence (--save "" --appendonly no), with its
# data directory and pid file under $BENCH_REDIS_DIR (default /tmp/benchredis). `start` refuses a
# port that something already listens on; `stop` stops only servers whose pid file is in that
# directory and whose command line names their port: no other Redis (the machine's 6379, the
# project's 6390, the tests' own) is ever touched. Ports move with BENCH_REDIS_PORT (default 7100:
# single on it, the cluster on the next three, the replicated pair on the two after).
set -euo pipefail

DIR=${BENCH_REDIS_DIR:-/tmp/benchredis}
BASE=${BENCH_REDIS_PORT:-7100}
SINGLE=("$BASE")
CLUSTER=("$((BASE + 1))" "$((BASE + 2))" "$((BASE + 3))")
PRIMARY=$((BASE + 4))
REPLICA=$((BASE + 5))

die() { echo "bench-redis: $*" >&2; exit 1; }

ports_of() {
    case $1 in
        single) echo "${SINGLE[@]}" ;;
        cluster) echo "${CLUSTER[@]}" ;;
        replicated) echo "$PRIMARY $REPLICA" ;;
        *) die "unknown topology '$1' (single, cluster, replicated or all)" ;;
    esac
}

# The pid of our server on a port, if it runs (pid file in $DIR and a redis-server naming the port).
our_pid() {
    local port=$1 pidfile="$DIR/$1/redis.pid" pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "redis-server.*:$port" || return 1
    echo "$pid"
}

listening() { ss -ltn "sport = :$1" 2>/dev/null | grep -q LISTEN; }

wait_ping() {
    local port=$1
    for _ in $(seq 100); do
        [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    die "redis-server on $port did not answer"
}

start_server() {
    local port=$1; shift
    if our_pid "$port" >/dev/null; then
        echo "127.0.0.1:$port already running (ours)"
        return 0
    fi
    listening "$port" && die "port $port is taken by another process: not ours, left alone"
    mkdir -p "$DIR/$port"
    rm -f "$DIR/$port/nodes.conf"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$DIR/$port" \
        --pidfile "$DIR/$port/redis.pid" --logfile "$DIR/$port/redis.log" --daemonize yes \
        --save "" --appendonly no --protected-mode yes "$@"
    wait_ping "$port"
    echo "127.0.0.1:$port started"
}

start() {
    case $1 in
        single) start_server "${SINGLE[0]}" ;;
        cluster)
            local p
            for p in "${CLUSTER[@]}"; do
                start_server "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
                    --cluster-node-timeout 5000
            done
            if [[ $(redis-cli -p "${CLUSTER[0]}" cluster info | tr -d '\r' | grep cluster_state) != cluster_state:ok ]]; then
                # Fresh nodes (a partly restarted cluster cannot be re-created: stop it first).
                redis-cli --cluster create "${CLUSTER[@]/#/127.0.0.1:}" --cluster-yes >/dev/null
            fi
            for _ in $(seq 100); do
                local ok=0
                for p in "${CLUSTER[@]}"; do
                    redis-cli -p "$p" cluster info | tr -d '\r' | grep -qx cluster_state:ok && ok=$((ok + 1))
                done
                ((ok == ${#CLUSTER[@]})) && { echo "cluster ok"; return 0; }
                sleep 0.2
            done
            die "the cluster did not reach cluster_state:ok"
            ;;
        replicated)
            start_server "$PRIMARY"
            start_server "$REPLICA" --replicaof 127.0.0.1 "$PRIMARY"
            for _ in $(seq 100); do
                redis-cli -p "$REPLICA" info replication | tr -d '\r' | grep -qx master_link_status:up \
                    && { echo "replica linked"; return 0; }
                sleep 0.2
            done
            die "the replica on $REPLICA did not link to $PRIMARY"
            ;;
    esac
}

stop() {
    local port pid
    for port in $(ports_of "$1"); do
        if pid=$(our_pid "$port"); then
            kill "$pid"
            for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
            echo "127.0.0.1:$port stopped"
        fi
        rm -rf "${DIR:?}/$port"
    done
}

status() {
    local port
    for port in $(ports_of "$1"); do
        if our_pid "$port" >/dev/null; then
            echo "$1 127.0.0.1:$port running ($(redis-cli -p "$port" info replication | tr -d '\r' | grep ^role:))"
        else
            echo "$1 127.0.0.1:$port not running"
        fi
    done
}

cmd=${1:-help}
what=${2:-all}
[[ $what == all ]] && set -- single cluster replicated || set -- "$what"
case $cmd in
    start | stop | status)
        for t in "$@"; do ports_of "$t" >/dev/null || exit 1; done
        for t in "$@"; do "$cmd" "$t"; done
        ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
