#!/usr/bin/env bash
# Performance figures for the README: pipeline (replay), scrape, churn, idle, and a live event
# storm against the local engine. Not part of CI (it takes minutes and loads the machine).
#
#   bash scripts/bench.sh            # everything
#   bash scripts/bench.sh pipeline   # one part: pipeline | scrape | churn | idle | live
#
# Needs a running Docker Engine (live, idle) and the test image (built by the tests, or by
# `cargo test --test integration cli::`).
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${1:-"pipeline scrape churn idle live"}
BIN=target/release/docker-events-exporter
W=$(mktemp -d)
trap 'rm -rf "$W"; [ -n "${PIDS:-}" ] && kill $PIDS 2>/dev/null || true' EXIT
PIDS=""

cargo build --release --locked -q
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "engine: $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo none)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
metric_sum() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" {s += $NF} END {printf "%d\n", s}'; }
wait_http() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

if [[ $parts == *pipeline* ]]; then
    echo; echo "== pipeline: 1,000,000 events replayed on one core (taskset -c 0)"
    $BIN generate-events --events 1000000 --engine 29 > "$W/e29.jsonl"
    $BIN generate-events --events 1000000 --engine 20.10 > "$W/e20.jsonl"
    echo "engine 29 shape ($(du -m "$W/e29.jsonl" | cut -f1) MB):"
    taskset -c 0 $BIN replay "$W/e29.jsonl" --log.level warn 2>&1 >/dev/null
    echo "engine 20.10 shape ($(du -m "$W/e20.jsonl" | cut -f1) MB):"
    taskset -c 0 $BIN replay "$W/e20.jsonl" --log.level warn 2>&1 >/dev/null
    echo "engine 29 shape with the 20 rules of benches/rules-20.yml (actions rendered dry):"
    taskset -c 0 $BIN replay "$W/e29.jsonl" --config benches/rules-20.yml --log.level warn 2>&1 >/dev/null
    rm -f "$W/e29.jsonl" "$W/e20.jsonl"
fi

if [[ $parts == *scrape* ]]; then
    echo; echo "== scrape: 10,000 containers' series, served by replay --serve"
    $BIN generate-events --events 400000 --containers 10000 > "$W/10k.jsonl"
    port=$(free_port)
    $BIN replay "$W/10k.jsonl" --serve --web.listen-address "127.0.0.1:$port" --log.level warn 2>"$W/serve.log" >/dev/null &
    pid=$!; PIDS="$PIDS $pid"
    wait_http "http://127.0.0.1:$port/metrics"
    containers=$(curl -s "http://127.0.0.1:$port/metrics" | grep '^docker_container_starts_total{' | wc -l)
    series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -vc '^#')
    for _ in $(seq 1 30); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics"; done | sort -n > "$W/times"
    echo "containers: $containers, series: $series, /metrics size: $(curl -s "http://127.0.0.1:$port/metrics" | wc -c) bytes"
    echo "scrape time over 30 scrapes: median $(sed -n 15p "$W/times") s, max $(tail -1 "$W/times") s"
    echo "resident memory after the scrapes: $(( $(rss_kib $pid) / 1024 )) MiB"
    kill $pid; wait $pid 2>/dev/null || true
fi

if [[ $parts == *churn* ]]; then
    echo; echo "== churn: one-shot containers (create, start, die, destroy, never the same name), series TTL 1m of event time"
    for n in 1500000 6000000; do
        $BIN generate-events --churn --events $n --containers 200 \
            | $BIN replay - --metrics.series-ttl 1m --log.level warn 2>"$W/churn.log" > "$W/churn.metrics"
        lifecycles=$(awk '/^docker_events_total\{action="destroy",object="container"\}/ {print $NF}' "$W/churn.metrics")
        echo "$lifecycles lifecycles: $(cat "$W/churn.log")"
    done
fi

if [[ $parts == *idle* ]]; then
    echo; echo "== idle: live against the engine, 30 s with no events"
    port=$(free_port)
    $BIN --web.listen-address "127.0.0.1:$port" --log.level warn &
    pid=$!; PIDS="$PIDS $pid"
    wait_http "http://127.0.0.1:$port/-/ready"
    sleep 2
    t0=$(cpu_ticks $pid); sleep 30; t1=$(cpu_ticks $pid)
    echo "CPU over 30 s: $(( t1 - t0 )) ticks of $(getconf CLK_TCK)/s; resident: $(( $(rss_kib $pid) / 1024 )) MiB ($(rss_kib $pid) KiB)"
    kill $pid; wait $pid 2>/dev/null || true
fi

if [[ $parts == *live* ]]; then
    echo; echo "== live: an event storm from the local engine, counted by the exporter and by the engine"
    image=dee-test-busybox:latest
    docker image inspect $image >/dev/null
    port=$(free_port)
    $BIN --web.listen-address "127.0.0.1:$port" --log.level warn &
    pid=$!; PIDS="$PIDS $pid"
    wait_http "http://127.0.0.1:$port/-/ready"
    duration=30
    e0=$(metric_sum $port docker_events_total)
    since=$(date +%s.%N)
    # The engine's own count: a second subscriber from the same moment, stopped only once
    # both have gone quiet.
    docker events --since "$since" --format '{{.Type}}' > "$W/engine-events" &
    counter=$!
    c0=$(cpu_ticks $pid); d0=$(cpu_ticks "$(pidof dockerd)")
    names=()
    for i in $(seq 1 20); do
        n="dee-storm-$$-$i"; names+=("$n")
        docker run -d --name "$n" --health-cmd true --health-interval 50ms --health-timeout 1s "$image" sleep 600 >/dev/null
    done
    loops=()
    for i in $(seq 1 6); do
        ( end=$((SECONDS + duration)); while [ $SECONDS -lt $end ]; do docker exec "${names[$i]}" true; done ) &
        loops+=($!)
    done
    wait "${loops[@]}"
    docker rm -f "${names[@]}" >/dev/null
    # Quiet: the exporter's count unchanged for 3 s.
    last=-1; now=$(metric_sum $port docker_events_total)
    while [ "$now" != "$last" ]; do sleep 3; last=$now; now=$(metric_sum $port docker_events_total); done
    kill $counter; wait $counter 2>/dev/null || true
    e1=$now
    c1=$(cpu_ticks $pid); d1=$(cpu_ticks "$(pidof dockerd)")
    engine=$(wc -l < "$W/engine-events"); ours=$(( e1 - e0 ))
    echo "events: engine $engine, exporter $ours"
    tck=$(getconf CLK_TCK)
    echo "CPU: exporter $(echo "scale=2; ($c1 - $c0) / $tck" | bc) s, dockerd $(echo "scale=2; ($d1 - $d0) / $tck" | bc) s"
    echo "exporter CPU per 100,000 events: $(echo "scale=3; ($c1 - $c0) / $tck * 100000 / $ours" | bc) s"
    echo "resident: $(( $(rss_kib $pid) / 1024 )) MiB"
    kill $pid; wait $pid 2>/dev/null || true
fi
