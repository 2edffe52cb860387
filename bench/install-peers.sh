#!/usr/bin/env bash
# Install the peers that bench/peers.py compares orch with: supervisord (PyPI
# package `supervisor`) and pm2 (npm package `pm2`).
#
# Idempotent: a second run only checks that the pinned versions are there.
# Nothing is installed system-wide: both go under one folder,
#   $ORCH_BENCH_PEERS   (default: ${XDG_CACHE_HOME:-$HOME/.cache}/orch-bench-peers)
#     venv/bin/supervisord     a Python venv with supervisor
#     npm/node_modules/.bin/pm2
# and bench/peers.py looks there first (then $SUPERVISORD / $PM2, then PATH).
#
# Needs python3 (with the venv module) and node + npm on PATH.
# Override versions with SUPERVISOR_VERSION / PM2_VERSION.
set -euo pipefail

PEERS_DIR="${ORCH_BENCH_PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/orch-bench-peers}"
SUPERVISOR_VERSION="${SUPERVISOR_VERSION:-4.3.0}"
PM2_VERSION="${PM2_VERSION:-7.0.4}"

mkdir -p "$PEERS_DIR"

# --- supervisord -----------------------------------------------------------
venv="$PEERS_DIR/venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "creating venv $venv"
    python3 -m venv "$venv"
fi
have_sv="$("$venv/bin/python" -c 'import supervisor, importlib.metadata as m; print(m.version("supervisor"))' 2>/dev/null || true)"
if [ "$have_sv" != "$SUPERVISOR_VERSION" ]; then
    echo "installing supervisor==$SUPERVISOR_VERSION"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "supervisor==$SUPERVISOR_VERSION"
fi
"$venv/bin/supervisord" --version >/dev/null

# --- pm2 -------------------------------------------------------------------
# `pm2 --version` would start a pm2 daemon in ~/.pm2, so the version is read
# from the package's package.json instead.
npm_dir="$PEERS_DIR/npm"
pm2_pkg="$npm_dir/node_modules/pm2/package.json"
have_pm2="$(node -e 'try{console.log(require(process.argv[1]).version)}catch(e){}' "$pm2_pkg" 2>/dev/null || true)"
if [ "$have_pm2" != "$PM2_VERSION" ]; then
    echo "installing pm2@$PM2_VERSION"
    mkdir -p "$npm_dir"
    [ -f "$npm_dir/package.json" ] || echo '{"private": true}' >"$npm_dir/package.json"
    npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error "pm2@$PM2_VERSION"
fi
[ -x "$npm_dir/node_modules/.bin/pm2" ]

echo "supervisord $("$venv/bin/supervisord" --version): $venv/bin/supervisord"
echo "pm2 $(node -e 'console.log(require(process.argv[1]).version)' "$pm2_pkg"): $npm_dir/node_modules/.bin/pm2"
