#!/usr/bin/env bash
# Development start (the README's first command runs it after `npm ci`): installs
# redis-server from Debian's packages when REDIS_URL is unset and it is missing, then
# starts the gateway on embedded defaults with the provider emulators.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is missing: installing it from Debian's packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq redis-server >/dev/null
fi
exec node --import tsx scripts/dev.ts
