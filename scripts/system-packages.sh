#!/usr/bin/env bash
# The Debian packages the development start and the tests run on, installed when missing:
# with apt-get when running as root, with `sudo -n` when that works without a password;
# otherwise it says exactly what to install and fails. Debian starts a system-wide Redis
# and PostgreSQL cluster when their packages are installed: those are stopped again,
# because the gateway and the tests start servers of their own.
#
#   scripts/system-packages.sh redis-server chromium postgresql-15 python3-jwt openssl
#   scripts/system-packages.sh --dry-run redis-server   # print the commands, run nothing
#
# `npm run dev` asks for redis-server, `npm test` (scripts/test.mjs) for all five.
set -euo pipefail

dry_run=false
if [ "${1:-}" = "--dry-run" ]; then
  dry_run=true
  shift
fi

# Where each package shows it is installed: what the code that needs it looks for.
installed() {
  case "$1" in
    redis-server) command -v redis-server >/dev/null 2>&1 ;; # src/storage/local-redis.ts, test/support/redis.ts
    chromium) [ -x /usr/bin/chromium ] ;; # test/demo-browser.test.ts (playwright cannot download browsers here)
    postgresql-15) [ -x "${POSTGRES_BIN_DIR:-/usr/lib/postgresql/15/bin}/postgres" ] ;; # scripts/postgres-cluster.mjs
    python3-jwt) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import jwt' >/dev/null 2>&1 ;; # test/verifying-tokens.test.ts (the PyJWT recipe)
    openssl) command -v openssl >/dev/null 2>&1 ;; # test/support/tls-certificates.ts (certificates for Redis over TLS)
    *)
      echo "system-packages: unknown package $1" >&2
      exit 2
      ;;
  esac
}

# The system service a package starts on installation, if any.
service_of() {
  case "$1" in
    redis-server) echo redis-server ;;
    postgresql-15) echo postgresql ;;
  esac
}

missing=()
for package in "$@"; do
  installed "$package" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

install_command="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing: ${missing[*]} (Debian package names). There is no apt-get here: install them with this system's package manager (on Debian/Ubuntu: $install_command)." >&2
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    echo "Missing Debian packages: ${missing[*]}. Install them as root (no password-less sudo here), then run this again:" >&2
    echo "  sudo sh -c '$install_command'" >&2
    exit 1
  fi
fi

run() {
  if $dry_run; then
    echo "would run: $*"
  else
    "$@" </dev/null
  fi
}

echo "Installing ${missing[*]} from Debian's packages"
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

for package in "${missing[@]}"; do
  service=$(service_of "$package")
  if [ -n "$service" ] && command -v service >/dev/null 2>&1; then
    if $dry_run; then
      echo "would run: ${sudo[*]}${sudo:+ }service $service stop"
    else
      "${sudo[@]}" service "$service" stop >/dev/null 2>&1 </dev/null || true
    fi
  fi
  if ! $dry_run && ! installed "$package"; then
    echo "system-packages: $package was installed but is still not where it is expected (see scripts/system-packages.sh)" >&2
    exit 1
  fi
done
