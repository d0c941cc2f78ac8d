#!/bin/bash
# The main job on one machine: snf-ganeti-eventd on a scratch queue directory (var/demo) while the
# job files a real Ganeti 3.0 cluster wrote are renamed into it with their recorded timing.
# Usage: scripts/demo.sh [--speed N] [--amqp-url URL]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "demo: Node.js >= 20.19 is needed (apt-get install nodejs npm)" >&2; exit 1; }
[ -d node_modules ] || npm ci --no-audit --no-fund
npx tsc -p tsconfig.json
exec node --import tsx scripts/demo.ts "$@"
