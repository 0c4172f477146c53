#!/usr/bin/env bash
# motcua-sms and Kannel side by side, in one run, on one machine, driven by the
# same load generator (`motcua-sms loadgen`, playing the carrier's SMSC).
#
#   a) Kannel 1.4.5 (Debian): bearerbox bound to loadgen over SMPP as a
#      transceiver; smsbox with a catch-all sms-service that either calls an
#      HTTP status backend (get-url → bench/kannel/status_backend.py, SQLite
#      built from the sample dossiers) or answers a fixed text.
#   b) motcua-sms `run` bound to loadgen through [[smpp.smsc]]
#      (bench/motcua.toml): SQLite read model from the sample dossiers, the
#      journal at synchronous=full (every message on disk before its ack).
#
# Each system gets, with fresh processes and files each time:
#   flat-out: FLAT_MESSAGES messages as fast as it takes them (window WINDOW)
#   rate:     RATE_MESSAGES messages offered at RATE msg/s (window WINDOW)
# and the peak resident memory of its processes (VmHWM). Prints a table and
# writes every report to bench/results/kannel-vs-motcua-<time>.json.
#
# Usage: bench/kannel-vs-motcua.sh            (as root on Debian 12; installs kannel if missing)
#        RUNS=3 FLAT_MESSAGES=20000 RATE=2000 RATE_MESSAGES=20000 bench/kannel-vs-motcua.sh
#        SYSTEMS="motcua kannel-geturl" bench/kannel-vs-motcua.sh
#        SYSTEMS="motcua motcua-sync-off" ...   (diagnostic: the journal without fsync)
#        KEEP_WORK=1 bench/kannel-vs-motcua.sh   (keep the logs and databases)
#        SYSTEMS="motcua motcua-postgres motcua-pair-postgres" bench/kannel-vs-motcua.sh
#          (the state database on PostgreSQL: one node, then two nodes sharing
#          one database, both bound to loadgen; STATE_POSTGRES names the
#          server, default postgres://postgres@127.0.0.1:5432; a fresh
#          database per run; the server's CPU is counted with the gateway's)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-1}
FLAT_MESSAGES=${FLAT_MESSAGES:-20000}
RATE=${RATE:-2000}
RATE_MESSAGES=${RATE_MESSAGES:-20000}
WINDOW=${WINDOW:-100}
SYSTEMS=${SYSTEMS:-"kannel-geturl kannel-text motcua"}
# Ports away from a packaged Kannel's defaults (13000/13001/13013).
SMSC_PORT=${SMSC_PORT:-22776}
ADMIN_PORT=${ADMIN_PORT:-23000}
SMSBOX_PORT=${SMSBOX_PORT:-23001}
SENDSMS_PORT=${SENDSMS_PORT:-23013}
BACKEND_PORT=${BACKEND_PORT:-28090}
DOSSIERS=$REPO/docs/sample-dossiers.jsonl
BIN=$REPO/target/release/motcua-sms
RESULTS=$REPO/bench/results
STATE_POSTGRES=${STATE_POSTGRES:-postgres://postgres@127.0.0.1:5432}
WORK=$(mktemp -d /tmp/kannel-vs-motcua.XXXXXX)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$RESULTS/kannel-vs-motcua-$STAMP.json
PIDS=()

say() { printf '%s\n' "$*" >&2; }

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else say "logs and databases kept in $WORK"; fi
}
trap cleanup EXIT

# --- one run at a time on a machine: the ports are fixed ---------------------
exec 9>/tmp/kannel-vs-motcua.lock
if ! flock -n 9; then
    say "another kannel-vs-motcua run holds /tmp/kannel-vs-motcua.lock; waiting for it"
    flock 9
fi

# --- what the run needs ------------------------------------------------------
if [ ! -x /usr/sbin/bearerbox ] || [ ! -x /usr/sbin/smsbox ]; then
    say "installing Debian's kannel"
    apt-get update -qq
    apt-get install -y -qq kannel >/dev/null
fi
if ! command -v python3 >/dev/null || ! python3 -c 'import sqlite3' 2>/dev/null; then
    say "installing python3 (the Kannel status backend)"
    apt-get update -qq
    apt-get install -y -qq python3 >/dev/null
fi
say "building motcua-sms (release)"
(cd "$REPO" && cargo build --release --quiet --bin motcua-sms)
mkdir -p "$RESULTS"

# --- helpers -----------------------------------------------------------------
LAST_PID=
start() { # start NAME CMD... : runs CMD in the background, logs to $WORK/NAME.log, sets LAST_PID
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop() { # stop PID... : SIGTERM, then wait (at most 15 s) for each
    local pid
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

hwm_kb() { # peak resident set of a live process, in kB
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

cpu_s() { # user + system CPU seconds of a live process
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}

wait_for() { # wait_for SECONDS CMD... : until CMD succeeds
    local limit=$1
    shift
    for _ in $(seq $((limit * 10))); do "$@" && return 0; sleep 0.1; done
    say "timed out waiting for: $*"
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

loadgen_args() { # loadgen_args MODE
    case $1 in
        flat) echo "-n $FLAT_MESSAGES --window $WINDOW" ;;
        rate) echo "-n $RATE_MESSAGES --rate $RATE --window $WINDOW" ;;
    esac
}

record() { # record SYSTEM MODE RUN RSS_KB CPU_S JSON_FILE EXTRA_JSON
    python3 - "$@" >>"$WORK/records.jsonl" <<'PY'
import json, sys
system, mode, run, rss_kb, cpu_s, path, extra = sys.argv[1:8]
try:
    report = json.load(open(path))
except (OSError, ValueError):
    report = None
row = {"system": system, "mode": mode, "run": int(run),
       "gateway_rss_peak_kb": int(rss_kb), "gateway_cpu_s": float(cpu_s),
       "loadgen": report}
row.update(json.loads(extra))
print(json.dumps(row))
PY
}

# --- one scenario per system -------------------------------------------------
run_kannel() { # run_kannel geturl|text MODE RUN
    local service=$1 mode=$2 run=$3 dir="$WORK/kannel-$1-$2-$3"
    mkdir -p "$dir"
    sed -e "s|@WORK@|$dir|g; s|@ADMIN_PORT@|$ADMIN_PORT|g; s|@SMSBOX_PORT@|$SMSBOX_PORT|g" \
        -e "s|@SENDSMS_PORT@|$SENDSMS_PORT|g; s|@SMSC_PORT@|$SMSC_PORT|g" \
        "$REPO/bench/kannel/kannel.conf.in" >"$dir/kannel.conf"
    sed -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" "$REPO/bench/kannel/service-$service.conf" >>"$dir/kannel.conf"
    local backend=""
    if [ "$service" = geturl ]; then
        start "backend-$mode-$run" python3 "$REPO/bench/kannel/status_backend.py" \
            --dossiers "$DOSSIERS" --db "$dir/status.db" --port "$BACKEND_PORT"
        backend=$LAST_PID
        wait_for 20 port_open "$BACKEND_PORT"
    fi
    local bearerbox smsbox
    start "bearerbox-$service-$mode-$run" /usr/sbin/bearerbox "$dir/kannel.conf"
    bearerbox=$LAST_PID
    wait_for 20 port_open "$SMSBOX_PORT"
    start "smsbox-$service-$mode-$run" /usr/sbin/smsbox "$dir/kannel.conf"
    smsbox=$LAST_PID
    wait_for 20 grep -q "Client connected" "$dir/bearerbox.log"
    # loadgen listens; bearerbox binds on its next reconnect (1 s).
    # shellcheck disable=SC2046
    "$BIN" loadgen --listen "127.0.0.1:$SMSC_PORT" --dossiers "$DOSSIERS" $(loadgen_args "$mode") \
        --system-id kannel --password secret \
        --json "$dir/loadgen.json" >"$dir/loadgen.txt" 2>"$dir/loadgen.err" || true
    local rss=$(($(hwm_kb "$bearerbox") + $(hwm_kb "$smsbox")))
    local cpu
    cpu=$(python3 -c "print($(cpu_s "$bearerbox") + $(cpu_s "$smsbox"))")
    local extra='{}'
    if [ -n "$backend" ]; then
        extra="{\"backend_rss_peak_kb\": $(hwm_kb "$backend"), \"backend_cpu_s\": $(cpu_s "$backend")}"
    fi
    stop "$smsbox" "$bearerbox" $backend
    record "kannel-$service" "$mode" "$run" "$rss" "$cpu" "$dir/loadgen.json" "$extra"
    sed 's/^/    /' "$dir/loadgen.txt" >&2
}

run_motcua() { # run_motcua SYSTEM MODE RUN JOURNAL_SYNC
    local system=$1 mode=$2 run=$3 sync=$4 dir="$WORK/$1-$2-$3"
    mkdir -p "$dir"
    # shellcheck disable=SC2046
    "$BIN" loadgen --listen "127.0.0.1:$SMSC_PORT" --dossiers "$DOSSIERS" $(loadgen_args "$mode") \
        --system-id motcua --password secret \
        --json "$dir/loadgen.json" >"$dir/loadgen.txt" 2>"$dir/loadgen.err" &
    local loadgen=$!
    PIDS+=("$loadgen")
    wait_for 20 port_open "$SMSC_PORT"
    sed -e "s|^port = 2776$|port = $SMSC_PORT|" "$REPO/bench/motcua.toml" >"$dir/motcua.toml"
    start "$system-$mode-$run" env MOTCUA_DATABASE__URL="sqlite://$dir/motcua.db" \
        MOTCUA_JOURNAL__URL="sqlite://$dir/journal.db" \
        MOTCUA_JOURNAL__SYNCHRONOUS="$sync" \
        MOTCUA_REPLY__TEMPLATES_DIR="$REPO/templates" \
        "$BIN" --config "$dir/motcua.toml" run --import "$DOSSIERS"
    local gateway=$LAST_PID
    wait "$loadgen" || true
    local rss cpu
    rss=$(hwm_kb "$gateway")
    cpu=$(cpu_s "$gateway")
    stop "$gateway"
    record "$system" "$mode" "$run" "$rss" "$cpu" "$dir/loadgen.json" "{\"journal_synchronous\": \"$sync\"}"
    sed 's/^/    /' "$dir/loadgen.txt" >&2
}

postgres_cpu_s() { # CPU seconds of every PostgreSQL server process now
    local total=0 pid
    for pid in $(pgrep -x postgres); do
        total=$(python3 -c "print($total + $(cpu_s "$pid"))")
    done
    echo "$total"
}

run_motcua_postgres() { # run_motcua_postgres SYSTEM MODE RUN NODES
    local system=$1 mode=$2 run=$3 nodes=$4 dir="$WORK/$1-$2-$3"
    mkdir -p "$dir"
    local database="bench_state_${run}_${mode}_$$"
    psql "$STATE_POSTGRES/postgres" -qAtc "CREATE DATABASE \"$database\"" >/dev/null
    local settle=300
    [ "$nodes" -gt 1 ] && settle=8000
    # shellcheck disable=SC2046
    "$BIN" loadgen --listen "127.0.0.1:$SMSC_PORT" --dossiers "$DOSSIERS" $(loadgen_args "$mode") \
        --system-id motcua --password secret --settle-ms "$settle" \
        --json "$dir/loadgen.json" >"$dir/loadgen.txt" 2>"$dir/loadgen.err" &
    local loadgen=$!
    PIDS+=("$loadgen")
    wait_for 20 port_open "$SMSC_PORT"
    sed -e "s|^port = 2776$|port = $SMSC_PORT|" "$REPO/bench/motcua.toml" >"$dir/motcua.toml"
    local pg_before
    pg_before=$(postgres_cpu_s)
    local gateways=() n
    for n in $(seq "$nodes"); do
        start "$system-$mode-$run-node$n" env MOTCUA_DATABASE__URL="sqlite://$dir/motcua-$n.db" \
            MOTCUA_JOURNAL__URL="$STATE_POSTGRES/$database" \
            MOTCUA_CLUSTER__NODE="bench-$n" \
            MOTCUA_HTTP__BIND="127.0.0.1:$((28180 + n))" \
            MOTCUA_REPLY__TEMPLATES_DIR="$REPO/templates" \
            "$BIN" --config "$dir/motcua.toml" run --import "$DOSSIERS"
        gateways+=("$LAST_PID")
    done
    wait "$loadgen" || true
    local rss=0 cpu pg_cpu pid
    cpu=0
    for pid in "${gateways[@]}"; do
        rss=$((rss + $(hwm_kb "$pid")))
        cpu=$(python3 -c "print($cpu + $(cpu_s "$pid"))")
    done
    pg_cpu=$(python3 -c "print(max(0.0, $(postgres_cpu_s) - $pg_before))")
    stop "${gateways[@]}"
    psql "$STATE_POSTGRES/postgres" -qAtc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null
    record "$system" "$mode" "$run" "$rss" "$cpu" "$dir/loadgen.json" \
        "{\"journal\": \"postgres\", \"nodes\": $nodes, \"backend_cpu_s\": $pg_cpu, \"synchronous_commit\": \"$(psql "$STATE_POSTGRES/postgres" -qAtc 'SHOW synchronous_commit')\"}"
    sed 's/^/    /' "$dir/loadgen.txt" >&2
}

# --- the run -----------------------------------------------------------------
for run in $(seq "$RUNS"); do
    for system in $SYSTEMS; do
        for mode in flat rate; do
            say "== run $run: $system, $mode"
            case $system in
                kannel-geturl) run_kannel geturl "$mode" "$run" ;;
                kannel-text) run_kannel text "$mode" "$run" ;;
                motcua) run_motcua motcua "$mode" "$run" full ;;
                motcua-sync-off) run_motcua motcua-sync-off "$mode" "$run" off ;;
                motcua-postgres) run_motcua_postgres motcua-postgres "$mode" "$run" 1 ;;
                motcua-pair-postgres) run_motcua_postgres motcua-pair-postgres "$mode" "$run" 2 ;;
                *) say "unknown system $system"; exit 2 ;;
            esac
        done
    done
done

python3 - "$WORK/records.jsonl" "$OUT" "$FLAT_MESSAGES" "$RATE" "$RATE_MESSAGES" "$WINDOW" <<'PY'
import json, os, platform, subprocess, sys
records_path, out, flat_n, rate, rate_n, window = sys.argv[1:7]
rows = [json.loads(l) for l in open(records_path)]
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
machine = {
    "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
    "cores": os.cpu_count(),
    "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
    "kernel": platform.release(),
    "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
    "kannel": sh("dpkg-query -W -f='${Version}' kannel"),
    "load_average_at_end": os.getloadavg(),
}
settings = {"flat_messages": int(flat_n), "rate": float(rate), "rate_messages": int(rate_n),
            "window": int(window)}
json.dump({"machine": machine, "settings": settings, "runs": rows}, open(out, "w"), indent=2)

def fmt(x, spec=".0f"):
    return "-" if x is None else format(x, spec)
systems = []
for r in rows:
    if r["system"] not in systems:
        systems.append(r["system"])
print()
print("flat out: %s messages; rate: %s messages at %s msg/s; window %s" % (flat_n, rate_n, rate, window))
print("CPU us: CPU time of the gateway's processes (Kannel: bearerbox + smsbox + HTTP backend; motcua on PostgreSQL: every gateway + the PostgreSQL server) per reply, flat out")
print("%-20s %3s | %10s %7s %8s | %8s %8s %8s %8s %7s | %7s" % (
    "system", "run", "flat MO/s", "missing", "CPU us", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
    "missing", "RSS MB"))
def cpu_per_msg(row):
    # The gateway's processes (and the HTTP backend's) per reply, flat-out run.
    if not row or not (row.get("loadgen") or {}).get("replies"):
        return None
    cpu = row.get("gateway_cpu_s", 0) + row.get("backend_cpu_s", 0)
    return cpu / row["loadgen"]["replies"] * 1e6
for system in systems:
    runs = sorted({r["run"] for r in rows if r["system"] == system})
    for run in runs:
        flat = next((r for r in rows if r["system"] == system and r["run"] == run and r["mode"] == "flat"), None)
        rated = next((r for r in rows if r["system"] == system and r["run"] == run and r["mode"] == "rate"), None)
        fl = (flat or {}).get("loadgen") or {}
        rl = (rated or {}).get("loadgen") or {}
        lat = rl.get("latency") or {}
        rss = max((x or {}).get("gateway_rss_peak_kb", 0) for x in (flat, rated)) / 1024
        print("%-20s %3s | %10s %7s %8s | %8s %8s %8s %8s %7s | %7.1f" % (
            system, run, fmt(fl.get("throughput")), fmt(fl.get("missing"), "d"),
            fmt(cpu_per_msg(flat)),
            fmt(lat.get("p50_ms"), ".2f"), fmt(lat.get("p99_ms"), ".2f"),
            fmt(lat.get("p999_ms"), ".2f"), fmt(lat.get("max_ms"), ".1f"),
            fmt(rl.get("missing"), "d"), rss))
print()
print("results: %s" % out)
PY
