#!/usr/bin/env bash
# Bootstrap of the read model from a core feed: a synthetic core with
# DOSSIERS dossiers (default 1,000,000), a gateway (release build) following
# it from an empty read model. Prints the time from start to the end of the
# snapshot (the gateway then follows changes) and the gateway's peak RSS.
#
#   bench/sync-bootstrap.sh                 # 1,000,000 dossiers
#   DOSSIERS=200000 bench/sync-bootstrap.sh
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/motcua_bench bench/sync-bootstrap.sh
#     (the read model in that PostgreSQL database, which must exist and be empty)
set -euo pipefail
cd "$(dirname "$0")/.."

DOSSIERS=${DOSSIERS:-1000000}
CORE_PORT=${CORE_PORT:-18090}
SMPP_PORT=${SMPP_PORT:-12775}
HTTP_PORT=${HTTP_PORT:-18080}
BIN=target/release/motcua-sms
cargo build --release --quiet
work=$(mktemp -d)
cleanup() { kill "${gateway:-}" "${core:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$BIN" core-sim --listen "127.0.0.1:$CORE_PORT" --dossiers "$DOSSIERS" \
  --changes-per-sec 0 --token bench >"$work/core.log" 2>&1 &
core=$!
for _ in $(seq 1 600); do
  curl -sf -H 'Authorization: Bearer bench' "http://127.0.0.1:$CORE_PORT/v1/snapshot?limit=1" >/dev/null && break
  sleep 0.1
done

export MOTCUA_DATABASE__URL="${DATABASE_URL:-sqlite://$work/read.db}"
export MOTCUA_JOURNAL__URL="sqlite://$work/journal.db"
export MOTCUA_SMPP__LISTENER__BIND="127.0.0.1:$SMPP_PORT"
export MOTCUA_HTTP__BIND="127.0.0.1:$HTTP_PORT"
export MOTCUA_SYNC__MODE=feed
export MOTCUA_SYNC__FEED__URL="http://127.0.0.1:$CORE_PORT/"
export MOTCUA_SYNC__FEED__TOKEN=bench
export MOTCUA_SYNC__FEED__DIGEST_INTERVAL_SECS=0
start=$(date +%s.%N)
(cd "$work" && exec "$OLDPWD/$BIN" run >"$work/gateway.log" 2>&1) &
gateway=$!
until grep -q "snapshot complete" "$work/gateway.log" 2>/dev/null; do
  kill -0 "$gateway" 2>/dev/null || { cat "$work/gateway.log"; exit 1; }
  sleep 0.2
done
end=$(date +%s.%N)
pid=$(pgrep -P "$gateway" -f "motcua-sms run" || echo "$gateway")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "?")
if [[ -n "${DATABASE_URL:-}" ]]; then
  dossiers=$(psql "$DATABASE_URL" -Atc "SELECT COUNT(*) FROM dossiers" 2>/dev/null || echo "?")
else
  dossiers=$(sqlite3 "$work/read.db" "SELECT COUNT(*) FROM dossiers" 2>/dev/null || echo "?")
fi
printf 'bootstrap: %s dossiers in %.1f s; gateway peak RSS %s kB\n' \
  "$dossiers" "$(echo "$end - $start" | bc)" "$hwm"
