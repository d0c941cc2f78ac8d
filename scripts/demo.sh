#!/bin/bash
# The main job on one machine: snf-ganeti-eventd on a scratch Ganeti queue directory (var/demo) fed a
# recorded run of a real Ganeti 3.0 cluster with its timing (job files, post hooks, snf-image's
# progress stream), snf-dispatcher keeping a SQLite database true to it, and a live view of that
# database and of the programs' counters. A private RabbitMQ node is started when no broker answers.
# Usage: scripts/demo.sh [--speed N] [--amqp-url URL] [--ganeti] [--help]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "demo: Node.js >= 20.19 is needed: apt-get install nodejs npm" >&2; exit 1; }
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
exec node --import tsx scripts/demo.ts "$@"
