#!/usr/bin/env bash
# Which gunicorn worker class gives a bare Flask /ping the most requests per second here, and
# how it compares with the FastAPI peer's own /ping under uvicorn: the ceilings of the stacks,
# interleaved round by round on one machine. Needs benchmarks/.venv (`benchmarks/run --help`
# makes it, gevent included) and wrk.
#   benchmarks/results/worker-classes/run.sh [rounds [workers]] > benchmarks/results/worker-classes/run.txt
# With more than one worker, uvicorn's share one listening socket and the kernel may give one of
# them most of wrk's kept-alive connections (gunicorn's each have their own, reuse_port): one
# worker each compares the stacks without that luck.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bench="$(cd "$here/../.." && pwd)"
bin="$bench/.venv/bin"
apps="$bench/apps"
rounds="${1:-3}"
workers="${2:-2}"
work="$(mktemp -d)"
pid=""
# Whatever stops the script (a failed load, Ctrl-C) stops the server under load too.
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; rm -rf "$work"' EXIT
# Not the project root: gunicorn would read its gunicorn.conf.py there.
cd "$work"
"$bin/python" -c "import gevent" 2>/dev/null || {
  echo "gevent is missing: $bin/pip install -r $bench/../requirements.txt" >&2
  exit 1
}

answers() { curl -fs --max-time 5 -o /dev/null "http://127.0.0.1:$1/ping"; }

load() { # name port command...: start, warm up 2 s, measure 10 s with 32 connections, stop
  local name=$1
  port=$2 # read by gunicorn_with
  shift 2
  if answers "$port"; then
    echo "something already answers on port $port: stop it first" >&2
    exit 1
  fi
  "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    answers "$port" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! answers "$port"; then
    echo "$name did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
  fi
  wrk -t1 -c32 -d2s "http://127.0.0.1:$port/ping" >/dev/null
  wrk -t1 -c32 -d10s --latency "http://127.0.0.1:$port/ping" >"$work/wrk.txt"
  local failures
  failures="$(grep -E 'Non-2xx|Socket errors' "$work/wrk.txt" | tr -s ' ' | paste -sd';' || true)"
  printf '%-36s %10s req/s, p50 %9s, p99 %9s, non-2xx and socket errors: %s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")" \
    "$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")" \
    "$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")" "${failures:-none}"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  if answers "$port"; then
    echo "$name is still answering after SIGTERM" >&2
    exit 1
  fi
}

gunicorn_with() { # worker-class args...: the bare Flask app, 2 workers, an access log as refapi's
  # exec: the background job's pid is gunicorn's own, for load() to stop it.
  exec "$bin/gunicorn" --chdir "$apps" -b "127.0.0.1:$port" -w "$workers" --reuse-port \
    --access-logfile "$work/access.log" "$@" bare_flask:app
}

echo "$(date -u +%FT%TZ), $(nproc) CPUs, $workers worker(s) each, wrk 32 connections, 1 thread, 10 s per load"
for round in $(seq "$rounds"); do
  echo "round $round"
  load "gunicorn gthread ${workers}x4" 18101 gunicorn_with -k gthread --threads 4
  load "gunicorn gevent $workers" 18102 gunicorn_with -k gevent
  # refapi's (REFAPI_WORKER_CLASS=gevent): gunicorn's, yielding after each request.
  load "refapi gevent $workers (yields)" 18105 gunicorn_with -k refapi.gevent_worker.GeventWorker
  load "gunicorn sync $workers (no keep-alive)" 18103 gunicorn_with -k sync
  PEER_DATABASE="$work/peer.db" PEER_API_KEY=unused \
    load "uvicorn FastAPI $workers" 18104 exec "$bin/uvicorn" --app-dir "$apps" --host 127.0.0.1 \
    --port 18104 --workers "$workers" peer_fastapi:app
done
