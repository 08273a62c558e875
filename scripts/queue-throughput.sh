#!/usr/bin/env bash
# Throughput of the Redis job queue on the shipped model (64x64), and its overhead per job against one process:
#   scripts/queue-throughput.sh [JOBS=40] [STEPS=20] [OVERHEAD_RUNS=30]
# Starts its own redis-server, gateway and workers on free loopback ports (1 libtorch thread each) and stops them.
# Needs: redis-server (apt-get install -y redis-server), curl, a Release build (dotnet build -c Release).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-40}; steps=${2:-20}; runs=${3:-30}
cli=src/SharpDiffusion.Cli/bin/Release/net10.0/SharpDiffusion.Cli.dll
[ -f "$cli" ] || { echo "build first: dotnet build -c Release" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install -y redis-server" >&2; exit 2; }
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { local p; while :; do p=$((20000 + RANDOM % 20000)); (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }; done; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# start NAME ARGS...: runs the CLI in the background and waits for its ready line; a server's address → $url
start() {
  local name=$1; shift
  dotnet "$cli" "$@" --threads 1 >"$work/$name.log" 2>&1 & pids+=($!)
  for _ in $(seq 600); do
    if grep -q -E '^(Serving|Worker) ' "$work/$name.log"; then
      url=$(grep -o -E 'on http://[0-9.:]+' "$work/$name.log" | head -1 | cut -c4- || true); return
    fi
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
body() { echo "{\"prompt\": \"a red circle, blue square\", \"seed\": $1, \"steps\": $2, \"width\": 64, \"height\": 64}"; }

# jobs per minute with N workers: all jobs submitted at once (POST /jobs), then polled until every one completed
throughput() {
  local url=$1 n=$2 ids=() t0 t1
  t0=$(now_ms)
  for i in $(seq "$jobs"); do
    ids+=("$(curl -s "$url/jobs" -H 'content-type: application/json' -d "$(body $((1000 + i)) "$steps")" | grep -o '"id":"[^"]*"' | cut -d'"' -f4)")
  done
  for id in "${ids[@]}"; do
    while :; do
      state=$(curl -s "$url/jobs/$id" | grep -o '"state":"[a-z]*"' | cut -d'"' -f4 || true)
      case "$state" in
        completed) break ;;
        failed|cancelled|"") echo "job $id ended '$state':" >&2; curl -s "$url/jobs/$id" >&2; exit 1 ;;
      esac
      sleep 0.05
    done
  done
  t1=$(now_ms)
  echo "$n worker(s): $jobs jobs of $steps steps in $(( t1 - t0 )) ms = $(( jobs * 60000 / (t1 - t0) )) jobs/min"
}

# one synchronous 1-step request (the generation itself is a few ms): its time in microseconds
request_us() {
  local t0 t1
  t0=$(date +%s%N)
  curl -s -f -o /dev/null "$1/sdapi/v1/txt2img" -H 'content-type: application/json' -d "$(body "$2" 1)" || { echo "request to $1 failed" >&2; exit 1; }
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 ))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
quartiles() { sort -n | awk '{ v[NR] = $1 } END { printf "%.1f-%.1f", v[int(NR / 4) + 1] / 1000, v[int(3 * NR / 4) + 1] / 1000 }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'; }

# sequential requests, alternating between the two servers (so both see the same machine), and the paired differences
overhead() {
  local local_url=$1 queue_url=$2 a b
  request_us "$local_url" 1 >/dev/null; request_us "$queue_url" 1 >/dev/null   # warm-up
  : >"$work/local.us"; : >"$work/queue.us"; : >"$work/diff.us"
  for i in $(seq "$runs"); do
    a=$(request_us "$local_url" "$i"); b=$(request_us "$queue_url" "$i")
    echo "$a" >>"$work/local.us"; echo "$b" >>"$work/queue.us"; echo $(( b - a )) >>"$work/diff.us"
  done
  echo "sequential 1-step requests, $runs each, alternating: in-process median $(ms "$(median <"$work/local.us")") ms" \
    "(quartiles $(quartiles <"$work/local.us") ms), queue median $(ms "$(median <"$work/queue.us")") ms" \
    "(quartiles $(quartiles <"$work/queue.us") ms); queue overhead per job: median of the paired differences" \
    "$(ms "$(median <"$work/diff.us")") ms (quartiles $(quartiles <"$work/diff.us") ms)"
}

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 & pids+=($!)
sleep 0.5
queue="redis://127.0.0.1:$rport/0"
start gateway serve --queue "$queue" --port 0 --queue-size 1000; gw=$url
start w1 worker --queue "$queue" --name w1
throughput "$gw" 1
start w2 worker --queue "$queue" --name w2
throughput "$gw" 2
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true   # one worker again, for the latency comparison
sleep 6                                                     # its registration expires
start local serve --port 0
overhead "$url" "$gw"
