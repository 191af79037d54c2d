#!/usr/bin/env bash
# Development start (the README's first command runs it after `npm ci`): installs
# redis-server from Debian's packages when REDIS_URL is unset and it is missing (see
# scripts/system-packages.sh), then starts the gateway on embedded defaults with the
# provider emulators (and the demo page, on the client package compiled first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${REDIS_URL:-}" ]; then
  bash scripts/system-packages.sh redis-server
fi
node scripts/demo-client.mjs
exec node --import tsx scripts/dev.ts
