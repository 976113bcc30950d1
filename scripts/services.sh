#!/usr/bin/env bash
# Faena development services: Redis + PostgreSQL.
#
# Usage: scripts/services.sh ensure|stop|status|help
#
#   ensure  Make sure a Redis and a PostgreSQL server answer, make sure the
#           database exists, write var/services.env (two lines: REDIS_URL=...
#           and DATABASE_URL=...) and print those two lines on stdout.
#           Each service is resolved on its own, first match wins:
#             1. $REDIS_URL / $DATABASE_URL from the environment, if they answer
#                (PostgreSQL is probed through the `postgres` database, since
#                the target database may not exist yet);
#             2. the machine's default loopback service: Redis 127.0.0.1:6379,
#                PostgreSQL user postgres at 127.0.0.1:5432 (trust auth);
#             3. a PROJECT-LOCAL instance with its data under ./var, on loopback
#                and non-standard ports (Redis 6390, PostgreSQL 5433). Missing
#                packages are installed from the distribution with apt-get
#                (Debian/Ubuntu only). An existing local instance is reused,
#                or started if it is stopped.
#           Finally the database named in DATABASE_URL (default: faena) is
#           created if it does not exist.
#   stop    Stop the project-local instances under ./var, if they run. The
#           machine's own services are never stopped.
#   status  Show what var/services.env points at, whether it answers, and the
#           state of the project-local instances.
#
# Environment:
#   FAENA_FORCE_LOCAL=1       skip steps 1 and 2: always use (and if needed
#                             install and start) the project-local instances.
#   REDIS_URL, DATABASE_URL   preferred services (step 1).
#   FAENA_LOCAL_REDIS_PORT    port of the local Redis      (default 6390).
#   FAENA_LOCAL_PG_PORT       port of the local PostgreSQL (default 5433).
#   FAENA_DB_NAME             database name when none is given by a URL
#                             (default faena).
#   FAENA_SERVICES_TIMEOUT    seconds to wait for a server to answer (default 30).
#
# Progress and errors go to stderr; only the two env lines go to stdout.
# Nothing outside ./var is changed, except installing distribution packages
# and, when run as root, creating the system user `faena-pg` (PostgreSQL
# refuses to run as root). The machine's services, /etc and
# /var/lib/postgresql are never touched.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

VAR_DIR=$ROOT/var
ENV_FILE=$VAR_DIR/services.env
REDIS_DIR=$VAR_DIR/redis
PG_ROOT=$VAR_DIR/pg
PG_DATA=$PG_ROOT/data
PG_LOG=$PG_ROOT/log
PG_SYSUSER=faena-pg

LOCAL_REDIS_PORT=${FAENA_LOCAL_REDIS_PORT:-6390}
LOCAL_PG_PORT=${FAENA_LOCAL_PG_PORT:-5433}
DB_NAME=${FAENA_DB_NAME:-faena}
TIMEOUT=${FAENA_SERVICES_TIMEOUT:-30}

DEFAULT_REDIS_URL=redis://127.0.0.1:6379
DEFAULT_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB_NAME
LOCAL_REDIS_URL=redis://127.0.0.1:$LOCAL_REDIS_PORT
LOCAL_DATABASE_URL=postgres://postgres@127.0.0.1:$LOCAL_PG_PORT/$DB_NAME

export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5}

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: error: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
  exit 1
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds or the
# deadline passes.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# ---------------------------------------------------------------- packages --

APT_UPDATED=
as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $*" "run this script as root, or install sudo, or install the packages yourself"
  fi
}

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    die "missing packages: $* (and no apt-get: this is not Debian/Ubuntu)" \
      "install Redis and PostgreSQL with your package manager, or start them yourself" \
      "and export REDIS_URL / DATABASE_URL before running: $0 ensure"
  fi
  log "installing from the distribution: $*"
  if [[ -z $APT_UPDATED ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
      die "apt-get update failed" "check the network / apt sources, then re-run: $0 ensure"
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
    die "apt-get install $* failed" "see apt's output above; install the packages yourself, then re-run: $0 ensure"
}

ensure_clients() {
  local pkgs=()
  command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
  command -v psql >/dev/null 2>&1 || pkgs+=(postgresql-client)
  if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found even after installing redis-tools"
  command -v psql >/dev/null 2>&1 || die "psql not found even after installing postgresql-client"
}

# --------------------------------------------------------------- URL tools --

# pg_url_db URL: the database name in a postgres URL (empty when none).
pg_url_db() {
  local rest=${1#*://}
  rest=${rest%%\?*}
  [[ $rest == */* ]] && printf '%s' "${rest#*/}"
  return 0
}

# pg_url_with_db URL DB: the same URL with its database replaced by DB.
pg_url_with_db() {
  local url=$1 db=$2 query="" scheme rest
  if [[ $url == *\?* ]]; then
    query="?${url#*\?}"
    url=${url%%\?*}
  fi
  scheme=${url%%://*}
  rest=${url#*://}
  printf '%s://%s/%s%s' "$scheme" "${rest%%/*}" "$db" "$query"
}

# ------------------------------------------------------------------ probes --

redis_answers() {
  local out
  out=$(timeout 5 redis-cli -u "$1" ping 2>/dev/null) || return 1
  [[ $out == PONG ]]
}

# pg_answers URL: probe the server through its `postgres` database.
pg_answers() {
  local out
  out=$(timeout 10 psql -X -w -Atq "$(pg_url_with_db "$1" postgres)" -c 'select 1' 2>/dev/null) || return 1
  [[ $out == 1 ]]
}

# -------------------------------------------------------------- local Redis --

pid_alive() { [[ $1 =~ ^[0-9]+$ && -d /proc/$1 ]] && grep -q "$2" "/proc/$1/cmdline" 2>/dev/null; }
pid_gone() { ! pid_alive "$1" redis; }

redis_pid_alive() {
  local pid
  [[ -s $REDIS_DIR/redis.pid ]] || return 1
  pid=$(<"$REDIS_DIR/redis.pid")
  pid_alive "$pid" redis
}

# Is the Redis answering on the local port the one whose data dir is ours?
redis_local_is_ours() {
  local dir
  dir=$(timeout 5 redis-cli -h 127.0.0.1 -p "$LOCAL_REDIS_PORT" config get dir 2>/dev/null | sed -n 2p) || return 1
  [[ -d $REDIS_DIR && $dir == "$(cd "$REDIS_DIR" && pwd -P)" ]]
}

start_local_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server redis-tools
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found even after installing redis-server"
  fi
  mkdir -p "$REDIS_DIR"
  if redis_answers "$LOCAL_REDIS_URL"; then
    if redis_local_is_ours; then
      log "redis: reusing the project-local instance on 127.0.0.1:$LOCAL_REDIS_PORT"
      return 0
    fi
    die "port $LOCAL_REDIS_PORT already has a Redis that is not this project's ($REDIS_DIR)" \
      "stop it, or pick another port: FAENA_LOCAL_REDIS_PORT=NNNN $0 ensure"
  fi
  if redis_pid_alive; then
    die "the local Redis (pid $(<"$REDIS_DIR/redis.pid")) runs but does not answer on 127.0.0.1:$LOCAL_REDIS_PORT" \
      "see $REDIS_DIR/redis.log; stop it with: $0 stop"
  fi
  log "redis: starting a project-local instance on 127.0.0.1:$LOCAL_REDIS_PORT (data in var/redis)"
  rm -f "$REDIS_DIR/redis.pid"
  if ! redis-server --bind 127.0.0.1 --port "$LOCAL_REDIS_PORT" \
    --dir "$REDIS_DIR" --daemonize yes \
    --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --save "" --appendonly no >&2 9>&-; then
    tail -n 20 "$REDIS_DIR/redis.log" >&2 2>/dev/null || true
    die "redis-server failed to start" "see $REDIS_DIR/redis.log"
  fi
  if ! wait_until "$TIMEOUT" redis_answers "$LOCAL_REDIS_URL"; then
    tail -n 20 "$REDIS_DIR/redis.log" >&2 2>/dev/null || true
    die "the local Redis did not answer on 127.0.0.1:$LOCAL_REDIS_PORT within ${TIMEOUT}s" \
      "see $REDIS_DIR/redis.log (is the port taken?)"
  fi
}

stop_local_redis() {
  if ! redis_pid_alive; then
    log "redis: no project-local instance running"
    return 0
  fi
  local pid
  pid=$(<"$REDIS_DIR/redis.pid")
  log "redis: stopping the project-local instance (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$TIMEOUT" pid_gone "$pid"; then
    die "the local Redis (pid $pid) did not stop within ${TIMEOUT}s" "see $REDIS_DIR/redis.log"
  fi
  rm -f "$REDIS_DIR/redis.pid"
}

# --------------------------------------------------------- local PostgreSQL --

PG_BIN=

# find_pg_bin [MAJOR]: set PG_BIN to the directory holding initdb and pg_ctl
# (the newest /usr/lib/postgresql/*/bin, or that of MAJOR when given).
find_pg_bin() {
  local want=${1:-} d
  PG_BIN=
  if [[ -n $want ]]; then
    d=/usr/lib/postgresql/$want/bin
    [[ -x $d/initdb && -x $d/pg_ctl ]] && PG_BIN=$d
  else
    PG_BIN=$(for d in /usr/lib/postgresql/*/bin; do
      [[ -x $d/initdb && -x $d/pg_ctl ]] && printf '%s\n' "$d"
    done | sort -V | tail -n 1)
  fi
  if [[ -z $PG_BIN ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    # Not Debian's layout (or a symlink on PATH): accept it if the version fits.
    d=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    if [[ -z $want ]] || "$d/pg_ctl" --version | grep -Eq " $want(\.|$| )"; then
      PG_BIN=$d
    fi
  fi
  [[ -n $PG_BIN ]]
}

pg_as() {
  if ((EUID == 0)); then
    (cd "$PG_ROOT" && runuser -u "$PG_SYSUSER" -- "$@")
  else
    (cd "$PG_ROOT" && "$@")
  fi
}

prepare_pg_dir() {
  mkdir -p "$PG_ROOT"
  if ((EUID == 0)); then
    command -v runuser >/dev/null 2>&1 || die "runuser not found (package util-linux)" \
      "PostgreSQL cannot run as root; install util-linux or run this script as a normal user"
    if ! id -u "$PG_SYSUSER" >/dev/null 2>&1; then
      log "postgres: creating system user $PG_SYSUSER (PostgreSQL refuses to run as root)"
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_SYSUSER" ||
        id -u "$PG_SYSUSER" >/dev/null 2>&1 || die "useradd $PG_SYSUSER failed"
    fi
    chown -R "$PG_SYSUSER:" "$PG_ROOT"
    chmod 700 "$PG_ROOT"
    if ! runuser -u "$PG_SYSUSER" -- test -w "$PG_ROOT"; then
      die "user $PG_SYSUSER cannot reach $PG_ROOT" \
        "a parent directory of the project is not traversable by other users (chmod o+x it)," \
        "or run this script as a normal user"
    fi
  elif [[ ! -w $PG_ROOT ]] || { [[ -e $PG_DATA ]] && [[ ! -O $PG_DATA ]]; }; then
    die "$PG_ROOT belongs to another user ($(stat -c %U "$PG_ROOT" 2>/dev/null))" \
      "run this script as that user (or as root), or remove var/pg to start afresh"
  fi
}

# pg_local_state: 0 running, 3 stopped, 4 no cluster.
pg_local_state() {
  [[ -f $PG_DATA/PG_VERSION ]] || return 4
  [[ -f $PG_DATA/postmaster.pid ]] || return 3
  local pid
  pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null)
  pid_alive "$pid" postgres && return 0
  return 3
}

pg_opts() {
  local sock=$PG_ROOT
  [[ $PG_ROOT != *"'"* ]] || die "the project path contains a single quote: $PG_ROOT"
  # A Unix socket path is limited to ~107 bytes; without one we still have TCP.
  if ((${#sock} + 20 > 107)); then sock=; fi
  printf "%s" "-p $LOCAL_PG_PORT -k '$sock' -c listen_addresses=127.0.0.1"
}

start_local_pg() {
  local state=0 version
  pg_local_state || state=$?
  if ((state == 4)); then
    find_pg_bin || {
      apt_install postgresql postgresql-client
      find_pg_bin || die "no initdb found under /usr/lib/postgresql/*/bin even after installing postgresql"
    }
  else
    version=$(<"$PG_DATA/PG_VERSION")
    find_pg_bin "$version" || die "var/pg/data was made by PostgreSQL $version, which is not installed" \
      "install postgresql-$version, or remove var/pg to start afresh with the installed version"
  fi
  prepare_pg_dir

  if ((state == 0)); then
    if pg_answers "$LOCAL_DATABASE_URL"; then
      log "postgres: reusing the project-local instance on 127.0.0.1:$LOCAL_PG_PORT"
      return 0
    fi
    die "the local PostgreSQL runs but does not answer on 127.0.0.1:$LOCAL_PG_PORT" \
      "was it started on another port? see $PG_LOG; stop it with: $0 stop"
  fi
  if pg_answers "$LOCAL_DATABASE_URL"; then
    die "port $LOCAL_PG_PORT already has a PostgreSQL that is not this project's ($PG_DATA)" \
      "stop it, or pick another port: FAENA_LOCAL_PG_PORT=NNNN $0 ensure"
  fi

  if ((state == 4)); then
    if [[ -e $PG_DATA ]] && [[ -n $(ls -A "$PG_DATA" 2>/dev/null) ]]; then
      die "$PG_DATA exists but holds no PostgreSQL cluster (a failed initdb?)" "remove var/pg and re-run: $0 ensure"
    fi
    log "postgres: initdb ($PG_BIN) into var/pg/data"
    pg_as "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C >"$PG_ROOT/initdb.log" 2>&1 || {
      tail -n 20 "$PG_ROOT/initdb.log" >&2
      die "initdb failed" "see $PG_ROOT/initdb.log; remove var/pg before trying again"
    }
  fi

  log "postgres: starting the project-local instance on 127.0.0.1:$LOCAL_PG_PORT (data in var/pg/data)"
  if ! pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "$(pg_opts)" -w -t "$TIMEOUT" start >&2 9>&-; then
    tail -n 20 "$PG_LOG" >&2 2>/dev/null || true
    die "pg_ctl start failed" "see $PG_LOG (is port $LOCAL_PG_PORT taken?)"
  fi
  if ! wait_until "$TIMEOUT" pg_answers "$LOCAL_DATABASE_URL"; then
    tail -n 20 "$PG_LOG" >&2 2>/dev/null || true
    die "the local PostgreSQL did not answer on 127.0.0.1:$LOCAL_PG_PORT within ${TIMEOUT}s" "see $PG_LOG"
  fi
}

stop_local_pg() {
  local state=0
  pg_local_state || state=$?
  if ((state != 0)); then
    log "postgres: no project-local instance running"
    return 0
  fi
  find_pg_bin "$(<"$PG_DATA/PG_VERSION")" || die "cannot find pg_ctl for PostgreSQL $(<"$PG_DATA/PG_VERSION")" \
    "stop it by hand: kill -INT \$(head -1 $PG_DATA/postmaster.pid)"
  log "postgres: stopping the project-local instance"
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$TIMEOUT" stop >&2 ||
    die "pg_ctl stop failed" "see $PG_LOG"
}

# ---------------------------------------------------------------- database --

ensure_database() {
  local url=$1 db admin exists
  db=$(pg_url_db "$url")
  [[ -n $db ]] || die "DATABASE_URL names no database: $url"
  admin=$(pg_url_with_db "$url" postgres)
  exists=$(psql -X -w -Atq "$admin" -v db="$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';") ||
    die "could not list databases on $admin"
  [[ $exists == 1 ]] && return 0
  log "postgres: creating database $db"
  if ! psql -X -w -q "$admin" -v db="$db" <<<'CREATE DATABASE :"db";' >&2; then
    # Another `ensure` may have created it meanwhile.
    exists=$(psql -X -w -Atq "$admin" -v db="$db" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';") || true
    [[ $exists == 1 ]] || die "could not create database $db on $admin" \
      "the role in DATABASE_URL needs CREATEDB, or create the database yourself"
  fi
}

# ---------------------------------------------------------------- commands --

env_line() {
  local key=$1 value=$2
  [[ $value != *"'"* && $value != *$'\n'* ]] || die "$key holds a quote or newline: $value"
  if [[ $value =~ ^[A-Za-z0-9_@%+=:,./?~-]*$ ]]; then
    printf '%s=%s\n' "$key" "$value"
  else
    printf "%s='%s'\n" "$key" "$value"
  fi
}

lock() {
  mkdir -p "$VAR_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$VAR_DIR/.services.lock"
    # The servers started below must not inherit fd 9 (they would hold the lock).
    flock -w 120 9 || die "another scripts/services.sh holds var/.services.lock for over 120 s" \
      "if none runs, a server started by an old version of this script may hold it: $0 stop"
  fi
}

cmd_ensure() {
  lock
  ensure_clients
  local redis_url="" db_url="" force=${FAENA_FORCE_LOCAL:-}
  [[ $force == 0 || $force == false ]] && force=

  if [[ -n $force ]]; then
    log "FAENA_FORCE_LOCAL is set: using project-local instances"
  else
    if [[ -n ${REDIS_URL:-} ]]; then
      if redis_answers "$REDIS_URL"; then
        redis_url=$REDIS_URL
        log "redis: using REDIS_URL from the environment"
      else
        log "redis: REDIS_URL=$REDIS_URL does not answer; trying the alternatives"
      fi
    fi
    if [[ -z $redis_url ]] && redis_answers "$DEFAULT_REDIS_URL"; then
      redis_url=$DEFAULT_REDIS_URL
      log "redis: using the machine's Redis on 127.0.0.1:6379"
    fi
    if [[ -n ${DATABASE_URL:-} ]]; then
      if pg_answers "$DATABASE_URL"; then
        db_url=$DATABASE_URL
        [[ -n $(pg_url_db "$db_url") ]] || db_url=$(pg_url_with_db "$db_url" "$DB_NAME")
        log "postgres: using DATABASE_URL from the environment"
      else
        log "postgres: DATABASE_URL=$DATABASE_URL does not answer; trying the alternatives"
      fi
    fi
    if [[ -z $db_url ]] && pg_answers "$DEFAULT_DATABASE_URL"; then
      db_url=$DEFAULT_DATABASE_URL
      log "postgres: using the machine's PostgreSQL on 127.0.0.1:5432"
    fi
  fi

  if [[ -z $redis_url ]]; then
    start_local_redis
    redis_url=$LOCAL_REDIS_URL
  fi
  if [[ -z $db_url ]]; then
    start_local_pg
    db_url=$LOCAL_DATABASE_URL
  fi

  ensure_database "$db_url"

  local tmp=$ENV_FILE.tmp.$$
  {
    env_line REDIS_URL "$redis_url"
    env_line DATABASE_URL "$db_url"
  } >"$tmp"
  mv -f "$tmp" "$ENV_FILE"
  log "wrote var/services.env"
  cat "$ENV_FILE"
}

cmd_stop() {
  lock
  stop_local_redis
  stop_local_pg
}

answers() { if "$@"; then echo "answers"; else echo "DOES NOT ANSWER"; fi; }

cmd_status() {
  local redis_url="" db_url="" state=0 pid
  if [[ -f $ENV_FILE ]]; then
    redis_url=$(sed -n "s/^REDIS_URL=//p" "$ENV_FILE" | tr -d "'")
    db_url=$(sed -n "s/^DATABASE_URL=//p" "$ENV_FILE" | tr -d "'")
    echo "var/services.env:"
    if command -v redis-cli >/dev/null 2>&1; then
      echo "  REDIS_URL=$redis_url ($(answers redis_answers "$redis_url"))"
    else
      echo "  REDIS_URL=$redis_url (redis-cli missing: cannot check)"
    fi
    if command -v psql >/dev/null 2>&1; then
      echo "  DATABASE_URL=$db_url ($(answers pg_answers "$db_url"))"
    else
      echo "  DATABASE_URL=$db_url (psql missing: cannot check)"
    fi
  else
    echo "var/services.env: absent (run: $0 ensure)"
  fi
  echo "project-local instances:"
  if redis_pid_alive; then
    pid=$(<"$REDIS_DIR/redis.pid")
    echo "  redis    running: $(tr '\0' ' ' <"/proc/$pid/cmdline" | sed -E 's/ +$//') (pid $pid, var/redis)"
  elif [[ -d $REDIS_DIR ]]; then
    echo "  redis    stopped (var/redis)"
  else
    echo "  redis    none"
  fi
  pg_local_state || state=$?
  case $state in
    0) echo "  postgres running: 127.0.0.1:$(sed -n 4p "$PG_DATA/postmaster.pid") (pid $(head -n 1 "$PG_DATA/postmaster.pid"), var/pg/data)" ;;
    3) echo "  postgres stopped (var/pg/data)" ;;
    *) echo "  postgres none" ;;
  esac
}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

case ${1:-} in
  ensure) cmd_ensure ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
