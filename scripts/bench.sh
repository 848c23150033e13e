#!/usr/bin/env bash
# Performance figures for the README: pipeline (replay), scrape, churn, idle, and a live event
# storm against the local engine. Not part of CI (it takes minutes and loads the machine).
#
#   bash scripts/bench.sh            # everything
#   bash scripts/bench.sh pipeline   # one part: pipeline | replay | conditions | instructions |
#                                    # scrape | churn | idle | live | syscalls | startup | engines |
#                                    # history | resolve | sinks
#   BASE=/path/to/old/binary bash scripts/bench.sh replay   # this build beside another one
#                                    # (replay, instructions, scrape and live take BASE)
#
# Needs a running Docker Engine (live, idle) and the test image (built by the tests, or by
# `cargo test --test integration cli::`).
set -euo pipefail
cd "$(dirname "$0")/.."
parts=${1:-"pipeline replay conditions instructions scrape churn idle live syscalls startup engines history resolve sinks"}
BIN=${BIN:-target/release/docker-events-exporter}
W=$(mktemp -d)
PIDS=""
DOCKERDS=""
BRIDGES=""
cleanup() {
    [ -n "$PIDS" ] && kill $PIDS 2>/dev/null || true
    # Private dockerds stop their containers and unmount before their folders go.
    for pid in $DOCKERDS; do kill "$pid" 2>/dev/null || true; done
    for pid in $DOCKERDS; do while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done; done
    for br in $BRIDGES; do ip link del "$br" 2>/dev/null || true; done
    rm -rf "$W" /tmp/deebx-$$-*
}
trap cleanup EXIT

cargo build --release --locked -q
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "engine: $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo none)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU time of a process's live threads in nanoseconds (schedstat: finer than the 10 ms ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }
metric_sum() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" {s += $NF} END {printf "%d\n", s}'; }
wait_http() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
# Serves the metrics (and status page) of replayed event files on a free port, in this shell:
# sets port and pid (the cleanup kills it), and returns once /metrics answers.
serve_replay() {
    port=$(free_port)
    ${SERVE_BIN:-$BIN} replay "$@" --serve --web.listen-address "127.0.0.1:$port" --log.level warn 2>"$W/serve.log" >/dev/null &
    pid=$!; PIDS="$PIDS $pid"
    wait_http "http://127.0.0.1:$port/metrics"
}
# 10,000 containers' events, made once for the parts that serve them.
ten_thousand() { [ -f "$W/10k.jsonl" ] || $BIN generate-events --events 400000 --containers 10000 > "$W/10k.jsonl"; }

# A dockerd of the bench's own (as the tests make them): its socket, data and exec roots, and a
# bridge of its own with no iptables rules. Sets PRIVATE_HOST to its DOCKER_HOST (run in this
# shell, not in $(...): the cleanup needs its pid and bridge).
private_dockerd() {
    local d="$W/dockerd$1" br="deebench$1"
    mkdir -p "$d"; echo '{}' > "$d/daemon.json"
    ip link add "$br" type bridge; BRIDGES="$BRIDGES $br"
    ip addr add "172.31.$((250 + $1)).1/24" dev "$br"
    dockerd --config-file "$d/daemon.json" --storage-driver vfs --host "unix://$d/docker.sock" \
        --data-root "$d/root" --exec-root "/tmp/deebx-$$-$1" --pidfile "$d/pid" --bridge "$br" \
        --iptables=false --ip-masq=false >"$d/log" 2>&1 &
    DOCKERDS="$DOCKERDS $!"
    for _ in $(seq 1 150); do docker -H "unix://$d/docker.sock" info >/dev/null 2>&1 && break; sleep 0.2; done
    PRIVATE_HOST="unix://$d/docker.sock"
}

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

# The shape issue 27 measures the pipeline on: 1,000,000 events of 5,000 containers, in random
# order, each object's keys shuffled, compact JSON.
chaotic() { [ -f "$W/chaotic.jsonl" ] || $BIN generate-events --events 1000000 --containers 5000 --chaotic > "$W/chaotic.jsonl"; }
# The events/s a replay of $2 by $1 printed.
replay_rate() { taskset -c 0 $1 replay "$2" --log.level warn "${@:3}" 2>&1 >/dev/null | sed -E 's/.*: ([0-9]+) events\/s.*/\1/'; }
# The rates of $1 in $W/rates, a line each.
rates() { awk -v b="$1" '$1 == b {print $2}' "$W/rates"; }
# Of seven numbers on standard input, a line each: "median M$1 (lowest L, highest H)".
spread() { sort -n > "$W/s"; echo "median $(sed -n 4p "$W/s")${1:-} (lowest $(head -1 "$W/s"), highest $(tail -1 "$W/s"))"; }

if [[ $parts == *replay* ]]; then
    echo; echo "== replay: the chaotic file (1,000,000 events, 5,000 containers, keys shuffled) on one core, builds alternating, 7 rounds"
    chaotic
    # This build with every feature at its default (the history on), the same without the
    # history (its share), and BASE.
    : > "$W/rates"
    for round in $(seq 1 7); do
        echo "this $(replay_rate "$BIN" "$W/chaotic.jsonl")" >> "$W/rates"
        echo "this-without-history $(replay_rate "$BIN" "$W/chaotic.jsonl" --history.size 0)" >> "$W/rates"
        [ -n "${BASE:-}" ] && echo "base $(replay_rate "$BASE" "$W/chaotic.jsonl")" >> "$W/rates"
    done
    for b in this this-without-history ${BASE:+base}; do
        echo "$b: $(rates "$b" | spread " events/s")"
    done
    med() { rates "$1" | sort -n | sed -n 4p; }
    echo "the history's share of a replay: $(echo "scale=1; 100 - 100 * $(med this) / $(med this-without-history)" | bc) %"
    [ -n "${BASE:-}" ] && echo "this build / BASE: $(echo "scale=2; $(med this) / $(med base)" | bc)x"
    # The same from each round's pair, run back to back: the VM's slow and fast spells, which
    # move a build's median by a tenth from one run to the next, touch both sides of a pair.
    # paired A B EXPR: EXPR of each round's rates x (A's) and y (B's); median (lowest, highest).
    paired() {
        awk -v a="$1" -v b="$2" '$1 == a {x[++n] = $2} $1 == b {y[++m] = $2}
            END {for (i = 1; i <= n; i++) printf "%.3f\n", '"$3"'}' "$W/rates" | spread
    }
    echo "the history's share, round by round (%): $(paired this this-without-history '100 - 100 * x[i] / y[i]')"
    [ -n "${BASE:-}" ] && echo "this build / BASE, round by round: $(paired this base 'x[i] / y[i]')"
fi

if [[ $parts == *conditions* ]]; then
    echo; echo "== conditions: the chaotic file on one core without rules, with the 4 container conditions of benches/rules-conditions.yml, and with the 20 event rules of benches/rules-20.yml (actions dry), alternating, 7 rounds"
    chaotic
    : > "$W/rates"
    for round in $(seq 1 7); do
        echo "none $(replay_rate "$BIN" "$W/chaotic.jsonl")" >> "$W/rates"
        echo "conditions $(replay_rate "$BIN" "$W/chaotic.jsonl" --config benches/rules-conditions.yml)" >> "$W/rates"
        echo "rules-20 $(replay_rate "$BIN" "$W/chaotic.jsonl" --config benches/rules-20.yml)" >> "$W/rates"
    done
    for b in none conditions rules-20; do
        echo "$b: $(rates "$b" | spread " events/s")"
    done
fi

if [[ $parts == *instructions* ]]; then
    echo; echo "== instructions an event (callgrind): replays of the first 100,000 and 200,000 events of the chaotic file; the difference over 100,000"
    chaotic
    head -100000 "$W/chaotic.jsonl" > "$W/c100k.jsonl"; head -200000 "$W/chaotic.jsonl" > "$W/c200k.jsonl"
    refs() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/refs:/ {gsub(",", "", $4); print $4}'; }
    for b in "$BIN" ${BASE:+"$BASE"}; do
        i1=$(refs $b replay "$W/c100k.jsonl" --log.level warn); i2=$(refs $b replay "$W/c200k.jsonl" --log.level warn)
        echo "$b: $(( (i2 - i1) / 100000 )) instructions an event"
    done
fi

if [[ $parts == *scrape* ]]; then
    echo; echo "== scrape: 10,000 containers' series, served by replay --serve"
    ten_thousand
    for b in "$BIN" ${BASE:+"$BASE"}; do
        SERVE_BIN=$b serve_replay "$W/10k.jsonl"
        containers=$(curl -s "http://127.0.0.1:$port/metrics" | grep '^docker_container_starts_total{' | wc -l)
        series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -vc '^#')
        for _ in $(seq 1 30); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics"; done | sort -n > "$W/times"
        echo "$b: containers: $containers, series: $series, /metrics size: $(curl -s "http://127.0.0.1:$port/metrics" | wc -c) bytes"
        echo "  scrape time over 30 scrapes: median $(sed -n 15p "$W/times") s, max $(tail -1 "$W/times") s"
        echo "  resident memory after the scrapes: $(( $(rss_kib $pid) / 1024 )) MiB"
        kill $pid; wait $pid 2>/dev/null || true
    done
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

# One storm (a container probing every second, 4 loops of `docker exec`, 1 loop of
# `docker run --rm`, DURATION s) with exporters side by side, each counting it at once. Each
# argument is "LABEL=COMMAND" (the command gets --web.listen-address added); prints the engine's
# own count and dockerd's CPU, then each exporter's events, CPU per 100,000 events and memory.
storm() {
    image=dee-test-busybox:latest
    docker image inspect $image >/dev/null
    local labels=() ports=() pids=()
    for spec in "$@"; do
        port=$(free_port)
        ${spec#*=} --web.listen-address "127.0.0.1:$port" --log.level warn 2>>"$W/storm.log" &
        pids+=($!); ports+=("$port"); labels+=("${spec%%=*}"); PIDS="$PIDS $!"
        wait_http "http://127.0.0.1:$port/-/ready"
    done
    duration=${DURATION:-60}
    e0=(); c0=()
    for i in "${!pids[@]}"; do e0+=("$(metric_sum "${ports[$i]}" docker_events_total)"); c0+=("$(cpu_ns "${pids[$i]}")"); done
    since=$(date +%s.%N)
    # The engine's own count: a second subscriber from the same moment, stopped only once
    # every exporter has gone quiet.
    docker events --since "$since" --format '{{.Type}}' > "$W/engine-events" &
    counter=$!
    d0=$(cpu_ticks "$(pidof dockerd)")
    probe="dee-storm-$$"
    docker run -d --name "$probe" --health-cmd true --health-interval 1s --health-timeout 1s "$image" sleep 600 >/dev/null
    loops=()
    for _ in 1 2 3 4; do
        ( end=$((SECONDS + duration)); while [ $SECONDS -lt $end ]; do docker exec "$probe" true; done ) &
        loops+=($!)
    done
    ( end=$((SECONDS + duration)); while [ $SECONDS -lt $end ]; do docker run --rm "$image" true; done ) &
    loops+=($!)
    wait "${loops[@]}"
    docker rm -f "$probe" >/dev/null
    d1=$(cpu_ticks "$(pidof dockerd)")
    # Quiet: every exporter's count unchanged for 3 s.
    for i in "${!pids[@]}"; do
        last=-1; now=$(metric_sum "${ports[$i]}" docker_events_total)
        while [ "$now" != "$last" ]; do sleep 3; last=$now; now=$(metric_sum "${ports[$i]}" docker_events_total); done
    done
    kill $counter; wait $counter 2>/dev/null || true
    engine=$(wc -l < "$W/engine-events")
    tck=$(getconf CLK_TCK)
    echo "events: engine $engine; dockerd CPU $(echo "scale=2; ($d1 - $d0) / $tck" | bc) s, $(echo "scale=1; ($d1 - $d0) / $tck * 100000 / $engine" | bc) s per 100,000 events"
    for i in "${!pids[@]}"; do
        ours=$(( $(metric_sum "${ports[$i]}" docker_events_total) - e0[i] ))
        c1=$(cpu_ns "${pids[$i]}")
        echo "${labels[$i]}: events $ours, CPU $(echo "scale=3; ($c1 - ${c0[$i]}) / 1000000000" | bc) s, $(echo "scale=3; ($c1 - ${c0[$i]}) / 1000000000 * 100000 / $ours" | bc) s per 100,000 events, resident $(( $(rss_kib "${pids[$i]}") / 1024 )) MiB"
        kill "${pids[$i]}"; wait "${pids[$i]}" 2>/dev/null || true
    done
}

if [[ $parts == *live* ]]; then
    echo; echo "== live: one storm, counted by the engine's own subscriber and by each exporter"
    storm "$BIN=$BIN" ${BASE:+"$BASE=$BASE"}
fi

# The sinks' stores, on free ports (sets ROTEL_PORT, SYSLOG_PORT, NATS_PORT): rotel dropping
# what it gets (no printing), rsyslog writing to a file, nats-server with a stream BENCH that
# takes bench.>, made through JetStream's API as the nats CLI would.
sink_stores() {
    ROTEL_PORT=$(free_port); SYSLOG_PORT=$(free_port); NATS_PORT=$(free_port)
    rotel=$(python3 -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')
    taskset -c 1 "$rotel" start --otlp-http-endpoint "127.0.0.1:$ROTEL_PORT" --otlp-grpc-endpoint "127.0.0.1:$(free_port)" \
        --exporter blackhole >"$W/rotel.log" 2>&1 &
    PIDS="$PIDS $!"
    mkdir -p "$W/rsyslog"
    printf 'global(workDirectory="%s" maxMessageSize="256k")\nmodule(load="imtcp")\ninput(type="imtcp" address="127.0.0.1" port="%s")\naction(type="omfile" file="%s/messages")\n' \
        "$W/rsyslog" "$SYSLOG_PORT" "$W/rsyslog" > "$W/rsyslog/rsyslog.conf"
    taskset -c 1 rsyslogd -n -f "$W/rsyslog/rsyslog.conf" -i "$W/rsyslog/pid" >"$W/rsyslog/log" 2>&1 &
    PIDS="$PIDS $!"
    taskset -c 1 nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$W/nats" >"$W/nats.log" 2>&1 &
    PIDS="$PIDS $!"
    for p in $ROTEL_PORT $SYSLOG_PORT $NATS_PORT; do
        for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
    done
    python3 - "$NATS_PORT" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
f.readline()  # INFO
cfg = json.dumps({"name": "BENCH", "subjects": ["bench.>"], "storage": "file"}).encode()
s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _INBOX.bench 1\r\n')
s.sendall(b"PUB $JS.API.STREAM.CREATE.BENCH _INBOX.bench %d\r\n%s\r\nPING\r\n" % (len(cfg), cfg))
while True:
    line = f.readline()
    if line.startswith(b"MSG"):
        reply = f.read(int(line.split()[-1]) + 2)
        assert b'"error"' not in reply, reply
        break
PY
}

if [[ $parts == *sinks* ]]; then
    echo; echo "== sinks: a history of 1,000,000 events (5,000 containers) caught up to rotel on loopback, the exporter on one core (taskset -c 0)"
    sink_stores
    $BIN generate-events --events 1000000 --containers 5000 --engine 29 > "$W/1m.jsonl"
    $BIN replay "$W/1m.jsonl" --history.dir "$W/catchup" --history.retention 100GiB --log.level warn 2>/dev/null >/dev/null
    rm -f "$W/1m.jsonl"
    echo "history: $(du -sm "$W/catchup" | cut -f1) MB on disk"
    for encoding in protobuf json; do
        rm -rf "$W/catchup/sinks"
        port=$(free_port)
        taskset -c 0 $BIN --history.dir "$W/catchup" --history.retention 100GiB --history.size 0 \
            --sink "otlp://127.0.0.1:$ROTEL_PORT?encoding=$encoding" \
            --web.listen-address "127.0.0.1:$port" --log.level warn 2>>"$W/catchup.log" &
        pid=$!; PIDS="$PIDS $pid"
        wait_http "http://127.0.0.1:$port/-/ready"
        sent=0
        while [ "$sent" -eq 0 ]; do sleep 0.05; sent=$(metric_sum "$port" docker_events_exporter_sink_events_sent_total); done
        t0=$(date +%s.%N); s0=$sent; c0=$(cpu_ns "$pid")
        while [ "$sent" -lt 1000000 ]; do sleep 0.2; sent=$(metric_sum "$port" docker_events_exporter_sink_events_sent_total); done
        t1=$(date +%s.%N); c1=$(cpu_ns "$pid")
        n=$((sent - s0))
        echo "otlp $encoding: $n events in $(echo "scale=2; $t1 - $t0" | bc) s: $(echo "scale=0; $n / ($t1 - $t0)" | bc) events/s; exporter CPU $(echo "scale=2; ($c1 - $c0) / 1000 / $n" | bc) us an event"
        kill $pid; wait $pid 2>/dev/null || true
    done

    echo; echo "== sinks: the live storm, an exporter with three sinks (otlp, syslog, nats) beside one with none, both with --history.dir"
    storm "no sink=$BIN --history.dir $W/h0" \
        "three sinks=$BIN --history.dir $W/h3 --sink otlp://127.0.0.1:$ROTEL_PORT --sink syslog://127.0.0.1:$SYSLOG_PORT --sink nats://127.0.0.1:$NATS_PORT/bench"
    echo "stores: rsyslog $(wc -l < "$W/rsyslog/messages") messages"
fi

if [[ $parts == *syscalls* ]]; then
    # System calls per event under the same storm, 20 s, for this build (strace slows what it
    # watches, so its CPU figures are not the live ones above). Needs strace.
    echo; echo "== syscalls: strace -c over a 20 s storm"
    image=dee-test-busybox:latest
    port=$(free_port)
    strace -f -c -o "$W/strace" "$BIN" --web.listen-address "127.0.0.1:$port" --log.level warn &
    spid=$!
    wait_http "http://127.0.0.1:$port/-/ready"
    e0=$(metric_sum "$port" docker_events_total)
    probe="dee-sys-$$"
    docker run -d --name "$probe" --health-cmd true --health-interval 1s "$image" sleep 600 >/dev/null
    loops=()
    for _ in 1 2 3 4; do
        ( end=$((SECONDS + 20)); while [ $SECONDS -lt $end ]; do docker exec "$probe" true; done ) &
        loops+=($!)
    done
    ( end=$((SECONDS + 20)); while [ $SECONDS -lt $end ]; do docker run --rm "$image" true; done ) &
    loops+=($!)
    wait "${loops[@]}"
    docker rm -f "$probe" >/dev/null
    sleep 3
    ours=$(( $(metric_sum "$port" docker_events_total) - e0 ))
    # strace ends when the exporter it runs does.
    pkill -TERM -P "$spid"; wait "$spid" 2>/dev/null || true
    calls=$(awk '$NF == "total" {print $(NF-2)}' "$W/strace")
    echo "events $ours, system calls $calls: $(echo "scale=2; $calls / $ours" | bc) per event"
    sort -k4 -n -r "$W/strace" | awk 'NR <= 8 && $NF != "total" {print "  " $NF ": " $4}'
fi

if [[ $parts == *startup* ]]; then
    # Start-up with 1,000 containers (made here with `docker create`, removed after): time to
    # /-/ready, CPU and peak memory until then.
    echo; echo "== startup: 1,000 created containers"
    image=dee-test-busybox:latest
    label="dee-startup-$$"
    for i in $(seq 1 1000); do echo "docker create --label $label=1 --health-cmd true $image true"; done | xargs -P 8 -I{} sh -c '{} >/dev/null'
    for b in "$BIN" ${BASE:+"$BASE"}; do
        port=$(free_port)
        t0=$(date +%s.%N)
        "$b" --web.listen-address "127.0.0.1:$port" --log.level warn &
        pid=$!; PIDS="$PIDS $pid"
        for _ in $(seq 1 3000); do curl -sf -o /dev/null "http://127.0.0.1:$port/-/ready" && break; sleep 0.01; done
        t1=$(date +%s.%N)
        known=$(curl -s "http://127.0.0.1:$port/metrics" | grep -c '^docker_container_starts_total{')
        echo "$b: ready in $(echo "$t1 - $t0" | bc) s, $known containers known, CPU $(( $(cpu_ticks $pid) * 1000 / $(getconf CLK_TCK) )) ms, peak $(( $(awk '/VmHWM/ {print $2}' /proc/$pid/status) / 1024 )) MiB"
        kill $pid; wait $pid 2>/dev/null || true
    done
    docker ps -aq --filter "label=$label" | xargs -r docker rm -f >/dev/null
fi

if [[ $parts == *engines* ]]; then
    # Several engines from one exporter. Idle: exporters of 1, 2 and 4 engines (private
    # dockerds, where nothing else makes events) at once, 120 s with no events; the differences
    # are the engines' cost. Memory is RssAnon (VmRSS also holds the binary's file pages, which vary by
    # a MiB from one copy of the file to the next); CPU is utime + stime, which keeps the time
    # of threads that have exited. Scrape: 3 engines of 3,000 containers (replay --serve of
    # three engines' logs) beside one engine of 9,000 (the same series without the label).
    echo; echo "== engines: idle cost per engine; scrape of 3 engines x 3,000 containers"
    hosts=""
    sets=()
    for i in 1 2 3 4; do
        private_dockerd $i; hosts="$hosts --docker.host p$i=$PRIVATE_HOST"
        [ $i = 3 ] || sets+=("$hosts")
    done
    ports=(); pids=()
    for hosts in "${sets[@]}"; do
        port=$(free_port)
        # shellcheck disable=SC2086
        $BIN --web.listen-address "127.0.0.1:$port" --log.level warn $hosts &
        pids+=($!); ports+=("$port"); PIDS="$PIDS $!"
    done
    for port in "${ports[@]}"; do wait_http "http://127.0.0.1:$port/-/ready"; done
    sleep 5
    c0=(); for pid in "${pids[@]}"; do c0+=("$(cpu_ticks "$pid")"); done
    sleep 120
    for i in "${!pids[@]}"; do
        up=$(metric_sum "${ports[$i]}" docker_events_exporter_up)
        anon=$(awk '/RssAnon/ {print $2}' "/proc/${pids[$i]}/status")
        echo "$(( i == 2 ? 4 : i + 1 )) engine(s), $up subscribed: CPU over 120 s $(( ($(cpu_ticks "${pids[$i]}") - c0[i]) * 1000 / $(getconf CLK_TCK) )) ms; RssAnon $anon KiB, VmRSS $(rss_kib "${pids[$i]}") KiB"
        kill "${pids[$i]}"; wait "${pids[$i]}" 2>/dev/null || true
    done
    for i in 1 2 3; do $BIN generate-events --events 120000 --containers 3000 --seed $i > "$W/engine-$i.jsonl"; done
    $BIN generate-events --events 360000 --containers 9000 > "$W/one-engine.jsonl"
    for files in "$W/engine-1.jsonl $W/engine-2.jsonl $W/engine-3.jsonl" "$W/one-engine.jsonl"; do
        # shellcheck disable=SC2086
        serve_replay $files
        containers=$(curl -s "http://127.0.0.1:$port/metrics" | grep -c '^docker_container_starts_total{')
        for _ in $(seq 1 30); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics"; done | sort -n > "$W/times"
        echo "$(echo $files | wc -w) engine(s), $containers containers, $(curl -s "http://127.0.0.1:$port/metrics" | wc -c) bytes: scrape median $(sed -n 15p "$W/times") s, max $(tail -1 "$W/times") s; resident $(( $(rss_kib $pid) / 1024 )) MiB"
        kill $pid; wait $pid 2>/dev/null || true
    done
fi

if [[ $parts == *history* ]]; then
    echo; echo "== history: replay without (--history.size 0) and with it (10,000), one core, alternated"
    for shape in 29 20.10; do
        $BIN generate-events --events 1000000 --engine "$shape" > "$W/h$shape.jsonl"
        for _ in 1 2 3; do
            for size in 0 10000; do
                echo "engine $shape, --history.size $size: $(taskset -c 0 $BIN replay "$W/h$shape.jsonl" --history.size $size 2>&1 >/dev/null | grep -o 'in .*')"
            done
        done
        head -200000 "$W/h$shape.jsonl" > "$W/h$shape-200k.jsonl"
        for size in 0 10000; do
            valgrind --tool=callgrind --callgrind-out-file="$W/cg" $BIN replay "$W/h$shape-200k.jsonl" --history.size $size >/dev/null 2>"$W/cg.log"
            echo "engine $shape, --history.size $size: $(awk '/Collected/ {printf "%.0f", $4 / 200000}' "$W/cg.log") instructions an event (callgrind, 200,000 events)"
        done
    done
    echo; echo "== history on disk: the same replay into --history.dir (its writer thread on the same core)"
    for _ in 1 2; do
        rm -rf "$W/hdir"
        echo "into --history.dir: $(taskset -c 0 $BIN replay "$W/h29.jsonl" --history.dir "$W/hdir" 2>&1 >/dev/null | grep -o 'in .*'); $(du -sm "$W/hdir" | cut -f1) MiB in $(ls "$W/hdir" | wc -l) segments"
    done
    echo; echo "== status page: 10,000 containers (replay --serve), loaded in headless Chromium"
    ten_thousand
    serve_replay "$W/10k.jsonl"
    echo "page: $(curl -s "http://127.0.0.1:$port/" | wc -c) bytes; server time for it, 10 requests: $(for _ in $(seq 1 10); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/"; done | sort -n | sed -n 5p) s median"
    DEE_BENCH_PAGE_URL="http://127.0.0.1:$port/" cargo test -q --locked --test integration -- --ignored --exact history::bench_status_page_first_paint --nocapture 2>&1 | grep -E 'first|median'
    kill $pid; wait $pid 2>/dev/null || true
fi

if [[ $parts == *resolve* ]]; then
    echo; echo "== resolve: the rules of benches/rules-20.yml, then the same with rules 02 (die) and 04 (unhealthy) given a resolve (callgrind, 200,000 events, actions dry)"
    $BIN generate-events --events 200000 --engine 29 > "$W/r.jsonl"
    python3 - benches/rules-20.yml "$W/rules-resolve.yml" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace('    event: {type: container, action: die, actor: {exitCode: "!0"}}\n',
              '    event: {type: container, action: die, actor: {exitCode: "!0"}}\n    resolve: {action: start}\n', 1)
s = s.replace('    event: {type: container, action: "health_status: unhealthy"}\n',
              '    event: {type: container, action: "health_status: unhealthy"}\n    resolve: {action: "health_status: healthy"}\n', 1)
assert s.count("resolve:") == 2
open(sys.argv[2], "w").write(s)
PY
    for rules in benches/rules-20.yml "$W/rules-resolve.yml"; do
        valgrind --tool=callgrind --callgrind-out-file="$W/cg" $BIN replay "$W/r.jsonl" --config "$rules" --log.level warn >/dev/null 2>"$W/cg.log"
        echo "$(basename "$rules"): $(awk '/Collected/ {printf "%.0f", $4 / 200000}' "$W/cg.log") instructions an event"
    done
fi
