#!/usr/bin/env bash
# The installed package's unit started for real, under systemd as PID 1 in
# a container, against a throwaway PostgreSQL 15 cluster:
#
#   bash tests/systemd/nspawn.sh     (as root, with the package installed)
#
# The container is this machine's own /usr (bound read-only) with a copy of
# its /etc, booted by systemd-nspawn; it shares the host's network, so
# cleave reaches the cluster on 127.0.0.1. Asserts: `systemctl start`
# returns once cleave sent READY=1, the unit is active with cleave's
# STATUS=, the watchdog is armed and pinged, `cleave status` answers on
# /run/cleave/status.sock, a reload keeps the main pid, and `systemctl
# stop` ends it with status 0. It needs a machine that lets systemd-nspawn
# boot (namespaces, cgroups): where the container cannot boot it exits 77
# (skipped, said why), which .ci/run reports and goes on; any failure of
# the unit itself is exit 1.
set -Eeuo pipefail
PGBIN=/usr/lib/postgresql/15/bin
die() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $* (this machine cannot boot a container)" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || die "run as root"
dpkg-query -W -f='${Status}' cleave 2>/dev/null | grep -q "install ok installed" ||
  die "the cleave package is not installed (bash debian/build.sh && apt-get install ./cleave_*.deb)"
command -v systemd-nspawn >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd-container >/dev/null

T=$(mktemp -d "${TMPDIR:-/tmp}/cleave-nspawn-XXXXXX")
chmod 755 "$T"
NSPAWN_PID=""
cleanup() {
  if [ -n "$NSPAWN_PID" ]; then   # SIGTERM: the container powers off
    kill "$NSPAWN_PID" 2>/dev/null || true
    wait "$NSPAWN_PID" 2>/dev/null || true
  fi
  [ -f "$T/pg/data/postmaster.pid" ] &&
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT

# ---- a source with one table, and an empty target database -------------
mkdir "$T/pg" && chown postgres: "$T/pg"
PORT=$(shuf -i 20000-60000 -n 1)
runuser -u postgres -- "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust --no-sync >/dev/null
cat >>"$T/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$T/pg'
wal_level = logical
fsync = off
EOF
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/log" -w start >/dev/null
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE shop" -c "CREATE DATABASE order_service_db"
psql -d shop -c "CREATE TABLE orders (id bigint PRIMARY KEY, note text);
                 INSERT INTO orders SELECT g, 'n' FROM generate_series(1, 1000) g"

# ---- the container's root: /usr bound at boot, a copy of /etc ----------
R=$T/root
mkdir -p "$R"/{usr/lib,var,dev,proc,sys,run,tmp,root}
for l in bin lib lib64 sbin; do ln -s "usr/$l" "$R/$l"; done
cp /usr/lib/os-release "$R/usr/lib/"   # nspawn looks for it before binding /usr
cp -a /etc "$R/etc"
# A machine id of its own, not a first boot: no presets, so the unit stays
# as the package left it (not enabled) and is started below.
systemd-id128 new >"$R/etc/machine-id"
cat >"$R/etc/cleave/cleave.yaml" <<EOF
name: nspawn
source:
  dsn: "host=127.0.0.1 port=$PORT dbname=shop user=postgres"
services:
  order_service:
    owned_tables: [orders]
    target:
      postgres: "host=127.0.0.1 port=$PORT dbname=order_service_db user=postgres"
EOF

setsid systemd-nspawn -D "$R" --bind-ro=/usr --boot --register=no --keep-unit \
  -M cleave-nspawn --console=passive >"$T/boot.log" 2>&1 </dev/null & NSPAWN_PID=$!
init=""
for _ in $(seq 100); do   # the container's PID 1: nspawn's child
  init=$(pgrep -P "$NSPAWN_PID" -x systemd || true)
  [ -n "$init" ] && break
  kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$T/boot.log" >&2; skip "systemd-nspawn exited"; }
  sleep 0.1
done
[ -n "$init" ] || { cat "$T/boot.log" >&2; skip "no systemd in the container"; }
in_ct() { nsenter -t "$init" -a "$@"; }
state=""
for _ in $(seq 600); do   # until the boot is over: running, or degraded
  state=$(in_ct systemctl is-system-running 2>/dev/null || true)
  [ "$state" = running ] || [ "$state" = degraded ] && break
  sleep 0.1
done
[ "$state" = running ] || [ "$state" = degraded ] ||
  { tail -20 "$T/boot.log" >&2; skip "the container did not boot in 60 s: '$state'"; }
echo "container booted: systemd is PID 1, system $state"
prop() { in_ct systemctl show cleave -P "$1"; }

# ---- the unit --------------------------------------------------------------
[ "$(in_ct systemctl is-enabled cleave || true)" = disabled ] ||
  die "the package enabled cleave.service"
timeout 60 nsenter -t "$init" -a systemctl start cleave ||
  { in_ct journalctl -u cleave --no-pager -o cat | tail -20 >&2; die "systemctl start cleave"; }
[ "$(prop ActiveState)/$(prop SubState)" = active/running ] || die "not active/running after start"
status=$(prop StatusText)
[[ $status == connected* ]] || die "STATUS= is '$status'"
echo "started: active (running) once READY=1 came; STATUS=$status"
[ "$(prop WatchdogUSec)" = 30s ] || die "watchdog $(prop WatchdogUSec), not 30s"
first=$(prop WatchdogTimestampMonotonic)
for _ in $(seq 200); do   # pinged at half of WatchdogSec
  [ "$(prop WatchdogTimestampMonotonic)" != "$first" ] && break
  sleep 0.1
done
[ "$(prop WatchdogTimestampMonotonic)" != "$first" ] || die "no watchdog ping in 20 s"
echo "watchdog: 30s, pinged (last at $(prop WatchdogTimestamp))"
in_ct cleave status | sed 's/^/   /'
for d in /var/lib/cleave /run/cleave; do
  [ "$(in_ct stat -c '%U:%G %a' "$d")" = "cleave:cleave 750" ] ||
    die "$d is $(in_ct stat -c '%U:%G %a' "$d"), not cleave:cleave 750"
done
echo "/var/lib/cleave and /run/cleave: cleave:cleave 0750"
pid=$(prop MainPID)
in_ct systemctl reload cleave
[ "$(prop MainPID)" = "$pid" ] && [ "$(prop ActiveState)" = active ] ||
  die "reload: main pid $pid became $(prop MainPID), $(prop ActiveState)"
echo "reloaded: main pid $pid, still active"
in_ct systemctl status cleave --no-pager | sed -n 1,8p | sed 's/^/   /'
in_ct systemctl stop cleave
[ "$(prop Result)/$(prop ExecMainStatus)" = success/0 ] ||
  die "stop: result $(prop Result), exit status $(prop ExecMainStatus)"
echo "stopped: exit status 0"
echo "PASS: cleave.service under systemd as PID 1"
