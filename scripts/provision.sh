#!/bin/bash
# Installs and starts what the test suite needs on a Debian 12 machine, when it is missing:
# Node.js >= 20.19 is assumed (the project's engines); RabbitMQ and PostgreSQL come from Debian.
# Idempotent: on a machine where everything runs already it only checks.
set -euo pipefail

need_apt=()
command -v rabbitmq-server >/dev/null || need_apt+=(rabbitmq-server)
[ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v hostname >/dev/null || need_apt+=(hostname)
# Packaging tests (test/packaging): build the .deb files, lint them, check the units.
command -v dh >/dev/null || need_apt+=(debhelper)
command -v dpkg-buildpackage >/dev/null || need_apt+=(dpkg-dev)
command -v help2man >/dev/null || need_apt+=(help2man)
command -v lintian >/dev/null || need_apt+=(lintian)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v man >/dev/null || need_apt+=(man-db)
command -v adduser >/dev/null || need_apt+=(adduser)
command -v runuser >/dev/null || need_apt+=(util-linux)
command -v python3 >/dev/null || need_apt+=(python3)
# The TLS tests make their certificate authority with openssl.
command -v openssl >/dev/null || need_apt+=(openssl)
# The real-Ganeti e2e test (test/e2e): Ganeti 3.0 itself, socat for its broker relay, curl for the RAPI.
command -v gnt-cluster >/dev/null || need_apt+=(ganeti)
command -v socat >/dev/null || need_apt+=(socat)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "provision: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start services (ganeti's daemons, sshd): the tests start what they need.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt_ok=1
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; } || apt_ok=0
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$apt_ok" = 1 ] || { echo "provision: apt-get failed" >&2; exit 1; }
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5672; then
  echo "provision: starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do port_open 5672 && break; sleep 1; done
fi
port_open 5672 || { echo "provision: RabbitMQ is not listening on 127.0.0.1:5672" >&2; exit 1; }

if ! port_open 5432; then
  echo "provision: starting PostgreSQL"
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_createcluster "$version" main >/dev/null
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
fi
port_open 5432 || { echo "provision: PostgreSQL is not listening on 127.0.0.1:5432" >&2; exit 1; }
# The tests connect as postgres over TCP without a password, as the machine's own setup allows.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -Atc 'show hba_file'")
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
fi
