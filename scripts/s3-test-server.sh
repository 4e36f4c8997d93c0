#!/usr/bin/env bash
# A throwaway single-node Ceph cluster (one monitor, one OSD, one RADOS Gateway) on loopback, for the S3 tests.
#   scripts/s3-test-server.sh start DIR   starts it, creates a user and prints the environment to reach it (also in DIR/env)
#   scripts/s3-test-server.sh stop DIR    stops the daemons, newest first, and removes DIR
# Needs Debian's radosgw, ceph-mon, ceph-osd and ceph-common (see --install). Settings and their reasons:
# ../shared/docs/s3-ceph-rgw.md (no cephx, pool size 1, v2 monitor address, crc client mode, fast paxos); tcp_nodelay on
# the frontend, without which a small object's body waits ~40 ms for an ACK (a GET of 300 bytes: 46 ms, with it 5 ms).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
ACCESS_KEY=release-server-test
SECRET_KEY=release-server-test-secret

install() {
  command -v radosgw >/dev/null && return 0
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd ceph-common >/dev/null
}

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

wait_for() { # seconds, description, command...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then echo "s3-test-server: timed out waiting for $what" >&2; tail -n 20 "$dir"/log/*.log >&2 || true; return 1; fi
    sleep 0.2
  done
}

start() {
  install
  mkdir -p "$dir"/{run,log,mon,osd,rgw}
  dir=$(cd "$dir" && pwd)
  local mon_port rgw_port fsid osd_uuid conf=$dir/ceph.conf
  mon_port=$(free_port); rgw_port=$(free_port)
  fsid=$(cat /proc/sys/kernel/random/uuid); osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$conf" <<CONF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
run dir = $dir/run
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
[mon]
mon data = $dir/mon/\$cluster-\$id
paxos propose interval = 0.05
mon allow pool delete = true
[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = bluestore
bluestore block path = $dir/osd/block
bluestore block create = true
bluestore block size = 8589934592
bluestore cache size = 134217728
osd memory target = 943718400
[client]
ms mon client mode = crc
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
CONF
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" 2>>"$dir/log/setup.log"
  ceph-mon -c "$conf" -i a -f >>"$dir/log/daemons.out" 2>&1 &
  echo $! >"$dir/pids"
  wait_for 30 "the monitor" timeout 5 ceph -c "$conf" mon stat
  ceph -c "$conf" osd new "$osd_uuid" >/dev/null
  mkdir -p "$dir/osd/ceph-0"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$dir/log/setup.log"
  ceph-osd -c "$conf" -i 0 -f >>"$dir/log/daemons.out" 2>&1 &
  echo $! >>"$dir/pids"
  wait_for 60 "osd.0 up and in" bash -c "ceph -c '$conf' osd dump | grep -q '^osd.0 up *in'"
  radosgw -c "$conf" -n client.rgw.a -f >>"$dir/log/daemons.out" 2>&1 &
  echo $! >>"$dir/pids"
  wait_for 60 "the gateway" curl -fsS "http://127.0.0.1:$rgw_port/"
  radosgw-admin -c "$conf" user create --uid=release-server-test --display-name=release-server-test \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null
  cat >"$dir/env" <<ENV
S3_ENDPOINT=http://127.0.0.1:$rgw_port
S3_REGION=us-east-1
S3_FORCE_PATH_STYLE=true
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
ENV
  cat "$dir/env"
}

stop() {
  [[ -f "$dir/pids" ]] || { rm -rf "$dir"; return 0; }
  # Newest first: stopping all at once can leave radosgw hanging.
  for pid in $(tac "$dir/pids"); do
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}

case $cmd in
  start) [[ -n $dir ]] || { echo "usage: $0 start DIR" >&2; exit 2; }; start ;;
  stop) [[ -n $dir ]] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop ;;
  --install) install ;;
  *) echo "usage: $0 start|stop DIR, or $0 --install" >&2; exit 2 ;;
esac
