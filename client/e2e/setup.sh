#!/usr/bin/env bash
# Installs what the VS Code end-to-end test needs, offline from anything but npm and Debian:
# Debian's chromium, ripgrep and libkrb5-dev (apt, as root), then code-server (the real VS Code
# for the web) and playwright-core from package-lock.json. Skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v rg >/dev/null || missing+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

stamp=node_modules/.installed
if [[ -f $stamp && $stamp -nt package-lock.json ]]; then
  exit 0
fi
# code-server's VS Code depends on @vscode/ripgrep, whose postinstall downloads rg from GitHub
# unless its cache has the archive: put Debian's rg there. (1.15.11 and v13.0.0-10 are what
# code-server 4.100.3 pins; a new code-server may need new numbers: see its error.)
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
mkdir -p "$cache/vscode-ripgrep-cache-1.15.11"
tar czf "$cache/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" \
  -C "$(dirname "$(command -v rg)")" rg
# code-server's postinstall refuses to run as root without unsafe_perm (npm itself no longer
# knows the option and warns); argon2 and kerberos build against Node's headers in /usr/include.
TMPDIR=$cache npm_config_yes=true npm_config_unsafe_perm=true npm_config_nodedir=${npm_config_nodedir:-/usr} \
  npm ci --no-audit --no-fund --loglevel=error
touch "$stamp"
