#!/bin/sh
# Exercises docs/operations.md, "Backing up the state database", PostgreSQL:
# base backup + WAL archiving + point-in-time restore, on a private
# PostgreSQL cluster of its own (a temporary folder, port 55432), since a
# shared server rarely allows the replication connection pg_basebackup needs.
# The state schema comes from `motcua-sms state copy` of a SQLite state
# database holding one block. Run as root (the cluster runs as `postgres`):
#   MOTCUA=target/debug/motcua-sms PGBIN=/usr/lib/postgresql/15/bin tests/pitr/pitr-restore.sh
# Prints "PITR restore: ok" and exits 0 when the restored database holds the
# rows committed before the target time and not the one committed after.
set -eu
MOTCUA=$(realpath "${MOTCUA:-target/debug/motcua-sms}")
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-55432}
W=$(mktemp -d /tmp/motcua-pitr.XXXXXX)
chown postgres "$W"
as_pg() { runuser -u postgres -- "$@"; }
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$W/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
sql() { "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$PORT" -U postgres -d "${2:-state}" -c "$1"; }

mkdir "$W/archive" "$W/sqlite"
chown postgres "$W/archive"
as_pg "$PGBIN/initdb" -D "$W/data" -U postgres -A trust >/dev/null
cat >> "$W/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$W'
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $W/archive/%f && cp %p $W/archive/%f'
EOF
as_pg "$PGBIN/pg_ctl" -D "$W/data" -l "$W/server.log" -w start >/dev/null
sql "CREATE DATABASE state" postgres

# A SQLite state database with one block, moved into PostgreSQL.
(cd "$W/sqlite" && MOTCUA_JOURNAL__URL="sqlite://$W/sqlite/state.db" \
  MOTCUA_DATABASE__URL="sqlite://$W/sqlite/read.db" \
  "$MOTCUA" block add 0912345678 --reason before-base-backup >/dev/null)
(cd "$W/sqlite" && MOTCUA_JOURNAL__URL="sqlite://$W/sqlite/state.db" \
  MOTCUA_DATABASE__URL="sqlite://$W/sqlite/read.db" \
  "$MOTCUA" state copy --to "postgres://postgres@127.0.0.1:$PORT/state" >/dev/null)

# The nightly base backup, checked.
as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$W/base" -Fp -X stream -c fast
as_pg "$PGBIN/pg_verifybackup" -q "$W/base"

# A change after the base backup (to be kept), the target time, then the
# mistake (to be undone); the WAL segment holding them archived.
sql "INSERT INTO blocks VALUES ('84900000002', NULL, 'after-base-backup', 1)"
sleep 1
TARGET=$(sql "SELECT now()")
sleep 1
sql "DELETE FROM blocks"
sql "SELECT pg_switch_wal()" >/dev/null
sleep 2
as_pg "$PGBIN/pg_ctl" -D "$W/data" -w stop >/dev/null

# The restore, as docs/operations.md describes it.
mv "$W/data" "$W/data.damaged"
cp -a "$W/base" "$W/data"
rm -rf "$W/data/pg_wal/"*
cat >> "$W/data/postgresql.conf" <<EOF
restore_command = 'cp $W/archive/%f %p'
recovery_target_time = '$TARGET'
recovery_target_action = 'promote'
EOF
as_pg touch "$W/data/recovery.signal"
as_pg "$PGBIN/pg_ctl" -D "$W/data" -l "$W/restore.log" -w start >/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do
  [ "$(sql 'SELECT pg_is_in_recovery()')" = f ] && break
  sleep 1
done
grep -q "recovery stopping before commit" "$W/restore.log"
BLOCKS=$(sql "SELECT string_agg(reason, ',' ORDER BY reason) FROM blocks")
MIGRATIONS=$(sql "SELECT COUNT(*) FROM _sqlx_migrations")
echo "restored to $TARGET: blocks [$BLOCKS], $MIGRATIONS migration(s)"
[ "$BLOCKS" = "after-base-backup,before-base-backup" ]
[ "$MIGRATIONS" -ge 1 ]
echo "PITR restore: ok"
