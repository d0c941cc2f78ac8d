#!/bin/bash
# ganeti-node.sh: a real single-node Ganeti 3.0 cluster (Debian package "ganeti", "fake" hypervisor)
# inside a network namespace of its own, for the end-to-end test (test/e2e/e2e.test.ts).
#
#   ganeti-node.sh check            print what is missing to run the cluster (nothing: exit 0)
#   ganeti-node.sh setup            netns, gnt-cluster init, a RAPI user E2E_RAPI_USER with password
#                                   E2E_RAPI_PASSWORD (environment); tears a leftover cluster down first
#   ganeti-node.sh teardown         stop every Ganeti daemon and relay, delete the netns and every
#                                   trace of the cluster, kill the daemons and remove the scratch
#                                   directories a test run recorded (idempotent, also after a crash)
#   ganeti-node.sh exec CMD...      run CMD on the node: inside the netns, with the node's hostname
#   ganeti-node.sh relay PORT       inside the netns, 127.0.0.1:5672 reaches root-namespace
#                                   127.0.0.1:PORT (socat through a unix socket); replaces a running one
#
# Only loopback and the namespace's own interfaces are used: nothing is added to the root
# namespace's network. Must run as root. The Ganeti state itself is global (/var/lib/ganeti,
# /var/run/ganeti): one cluster per machine, which `setup` enforces by tearing down any earlier one.
set -euo pipefail

NS=${E2E_NETNS:-snf-e2e}
NODE=node1.example.test
NODE_IP=198.51.100.10
CLUSTER=cluster1.example.test
MASTER_IP=198.51.100.100
DEV=gnt0                 # master netdev: a veth pair with both ends in the netns (no "dummy" module here)
BRIDGE=br-gnt            # link of the bridged NICs
FILE_STORAGE=/srv/ganeti/file-storage
RUN_DIR=/run/snf-gtools-e2e
RELAY_SOCK=$RUN_DIR/amqp.sock
# Written by the TS harness; removed here so that a crashed run leaves nothing behind.
OS_DIR=/srv/ganeti/os/snf-image
HOOK_FILE=snf-gtools-e2e-hook   # not the package's name (snf-ganeti-hook): test/packaging installs that one
DAEMON_UTIL=/usr/lib/ganeti/daemon-util

log() { printf '[ganeti-node %s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# In the netns, in a new UTS namespace named after the node: Ganeti compares the hostname with its node name.
on_node() {
  ip netns exec "$NS" unshare --uts -- /bin/sh -c 'hostname "$0" && exec "$@"' "$NODE" "$@"
}

missing() {
  local out=()
  [ "$(id -u)" = 0 ] || out+=("root")
  for cmd in ip unshare socat gnt-cluster; do command -v "$cmd" >/dev/null 2>&1 || out+=("$cmd"); done
  [ -x "$DAEMON_UTIL" ] || out+=("$DAEMON_UTIL (package ganeti)")
  if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
    # Network namespaces may be refused (a container without CAP_SYS_ADMIN): try one.
    local probe="snf-e2e-probe-$$"
    if ip netns add "$probe" 2>/dev/null; then ip netns del "$probe"; else out+=("network namespaces (ip netns add failed)"); fi
  fi
  printf '%s\n' "${out[@]}"
}

pid_alive_as() { # pid comm: the pid runs a process whose comm (15 chars) is comm
  [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "${2:0:15}" ]
}

stop_relay() {
  local f
  for f in "$RUN_DIR"/relay-*.pid; do
    [ -e "$f" ] || continue
    pid_alive_as "$(cat "$f")" socat && kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  rm -f "$RELAY_SOCK"
}

stop_ganeti_daemons() {
  local f pid name pids=""
  for f in /var/run/ganeti/ganeti-*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    name=$(basename "$f" .pid)
    if pid_alive_as "$pid" "$name"; then kill -TERM "$pid" 2>/dev/null && pids="$pids $pid"; fi
  done
  local i
  for i in $(seq 1 100); do
    local alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
    pids=$alive
    [ -z "$pids" ] && return 0
    sleep 0.1
  done
  log "Ganeti daemons still alive after 10 s, SIGKILL:$pids"
  kill -KILL $pids 2>/dev/null || true
}

# The test's own daemons and scratch directories, as recorded by the harness (harness.ts), for
# a run that crashed before its own cleanup: "<pid> <marker>" per line, where the marker (the run's
# scratch directory) is in the process's command line or environment, so that a reused pid is spared.
stop_recorded() {
  local pid marker
  if [ -e "$RUN_DIR/processes" ]; then
    while read -r pid marker; do
      if [ -n "$marker" ] && cat "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null | tr '\0' '\n' | grep -qF -- "$marker"; then
        log "killing leftover process $pid ($marker)"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$RUN_DIR/processes"
    rm -f "$RUN_DIR/processes"
  fi
  if [ -e "$RUN_DIR/scratch" ]; then
    while read -r dir; do
      case "$dir" in */snf-gtools-e2e-*|*/rabbit-*) rm -rf -- "$dir" ;; esac
    done <"$RUN_DIR/scratch"
    rm -f "$RUN_DIR/scratch"
  fi
}

do_teardown() {
  local t0=$SECONDS
  stop_recorded
  stop_relay
  stop_ganeti_daemons
  if [ -e "/run/netns/$NS" ]; then
    # Whatever still runs in the namespace (a job's child, an OS script) goes with it.
    local pids; pids=$(ip netns pids "$NS" 2>/dev/null | tr '\n' ' ')
    if [ -n "${pids// }" ]; then kill -KILL $pids 2>/dev/null || true; fi
    ip netns del "$NS"
  fi
  rm -rf "/etc/netns/$NS"
  if [ -d /var/lib/ganeti ]; then find /var/lib/ganeti -mindepth 1 -delete; fi
  rm -rf /var/run/ganeti "$OS_DIR" "$FILE_STORAGE" /etc/ganeti/file-storage-paths
  rmdir /srv/ganeti/os /srv/ganeti 2>/dev/null || true
  local d
  for d in /etc/ganeti/hooks/*.d; do
    [ -d "$d" ] || continue
    rm -f "$d/$HOOK_FILE"
    rmdir "$d" 2>/dev/null || true
  done
  rmdir /etc/ganeti/hooks "$RUN_DIR" 2>/dev/null || true
  log "teardown: $((SECONDS - t0)) s"
}

make_netns() {
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add "$DEV" type veth peer name "${DEV}p"
  ip -n "$NS" link set "${DEV}p" up
  ip -n "$NS" link set "$DEV" up
  ip -n "$NS" addr add "$NODE_IP/24" dev "$DEV"
  ip -n "$NS" link add "$BRIDGE" type bridge
  ip -n "$NS" link set "$BRIDGE" up
  # `ip netns exec` bind-mounts these over /etc/hosts and /etc/resolv.conf: names resolve from the
  # file, and any other lookup fails at once (nothing answers on the namespace's 127.0.0.1:53).
  mkdir -p "/etc/netns/$NS"
  printf '127.0.0.1 localhost\n%s %s %s\n%s %s %s\n' "$NODE_IP" "$NODE" "${NODE%%.*}" "$MASTER_IP" "$CLUSTER" "${CLUSTER%%.*}" \
    >"/etc/netns/$NS/hosts"
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"/etc/netns/$NS/resolv.conf"
}

do_setup() {
  : "${E2E_RAPI_USER:?the RAPI user to create}" "${E2E_RAPI_PASSWORD:?its password}"
  local problems; problems=$(missing)
  [ -z "$problems" ] || die "missing: $(echo $problems)"
  if [ -e "/run/netns/$NS" ] || [ -e /var/lib/ganeti/config.data ] || compgen -G '/var/run/ganeti/*.pid' >/dev/null \
    || [ -e "$RUN_DIR/processes" ] || [ -e "$RUN_DIR/scratch" ]; then
    log "a cluster or namespace is left over: tearing it down first"
    do_teardown
  fi
  local t0=$SECONDS
  make_netns
  # gnt-cluster init reads the SSH host key (it sets nothing up with --no-ssh-init).
  [ -f /etc/ssh/ssh_host_rsa_key.pub ] || ssh-keygen -A >/dev/null
  mkdir -p "$FILE_STORAGE"
  echo "$FILE_STORAGE" >/etc/ganeti/file-storage-paths
  # The "file" disk template: the OS create script runs only for an instance with a disk (a 1 MiB
  # sparse file here); "diskless" stays enabled for instances without one.
  on_node gnt-cluster init \
    --enabled-hypervisors=fake \
    --enabled-disk-templates=file,diskless \
    --file-storage-dir="$FILE_STORAGE" \
    --no-etc-hosts --no-ssh-init \
    --master-netdev="$DEV" --master-netmask=24 \
    --nic-parameters="mode=bridged,link=$BRIDGE" \
    "$CLUSTER" >&2 || { tail -30 /var/log/ganeti/commands.log >&2 || true; die "gnt-cluster init failed"; }
  # RAPI (127.0.0.1:5080 in the netns, per /etc/default/ganeti) with a user allowed to write.
  install -d -o gnt-rapi -g gnt-masterd -m 750 /var/lib/ganeti/rapi
  install -o gnt-rapi -g gnt-masterd -m 640 /dev/null /var/lib/ganeti/rapi/users
  printf '%s %s write\n' "$E2E_RAPI_USER" "$E2E_RAPI_PASSWORD" >/var/lib/ganeti/rapi/users
  local i
  for i in $(seq 1 100); do
    on_node gnt-cluster getmaster >/dev/null 2>&1 && break
    sleep 0.2
  done
  on_node gnt-cluster getmaster >/dev/null || die "the cluster does not answer"
  log "setup: $((SECONDS - t0)) s"
}

do_relay() {
  local port=${1:?relay PORT}
  [ -e "/run/netns/$NS" ] || die "netns $NS missing (setup first)"
  stop_relay
  mkdir -p "$RUN_DIR"
  # root namespace: unix socket -> the broker on loopback
  socat "UNIX-LISTEN:$RELAY_SOCK,fork,mode=600" "TCP:127.0.0.1:$port" </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN_DIR/relay-root.pid"
  # netns: 127.0.0.1:5672 -> the unix socket (the file system is shared)
  ip netns exec "$NS" socat TCP-LISTEN:5672,bind=127.0.0.1,fork,reuseaddr "UNIX-CONNECT:$RELAY_SOCK" </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN_DIR/relay-ns.pid"
  local i
  for i in $(seq 1 50); do
    [ -S "$RELAY_SOCK" ] && ip netns exec "$NS" bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672' 2>/dev/null && return 0
    sleep 0.1
  done
  die "relay did not come up"
}

cmd=${1:-}
shift || true
case "$cmd" in
  check) problems=$(missing); [ -z "$problems" ] || { echo "$problems"; exit 1; } ;;
  setup) do_setup ;;
  teardown) do_teardown ;;
  exec) on_node "$@" ;;
  relay) do_relay "$@" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
