#!/usr/bin/env bash
# Runs lexgate's whole test suite on a fresh Debian machine with the Rust toolchain:
#   1. installs PostgreSQL from Debian's packages when it is missing (needs root),
#   2. installs Chromium and chromedriver from Debian's packages when missing (page tests),
#   3. installs the pinned ONNX Runtime and embedding model (scripts/setup-models.sh), the answer
#      generator's server and model (scripts/setup-generator.sh) and the test OpenID provider
#      (npm ci in tests/oidc),
#   4. starts a throwaway PostgreSQL cluster and the answer generator on free loopback ports,
#   5. runs `cargo test --workspace` (SQLite and PostgreSQL storage tests, the real model, the web app),
#   6. stops the cluster, whatever the outcome.
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -- ask`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
die() { echo "test.sh: $*" >&2; exit 1; }

find_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
pg_bin=$(find_pg_bin || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing PostgreSQL (Debian package postgresql, ~10 s)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(find_pg_bin || true)
  fi
  [ -n "$pg_bin" ] || die "PostgreSQL server binaries not found: install them with 'apt-get install postgresql'"
fi

# Page tests drive a real headless Chromium through chromedriver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing Chromium and chromedriver (Debian packages chromium, chromium-driver, ~30 s)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
    || die "Chromium not found: install it with 'apt-get install chromium chromium-driver'"
fi

scripts/setup-models.sh
scripts/setup-generator.sh

# Sign-in tests run against a real OpenID provider (npm package oidc-provider, pinned in
# tests/oidc/package-lock.json with integrity hashes).
command -v node >/dev/null && command -v npm >/dev/null \
  || die "Node.js 20+ and npm not found: the sign-in tests start the OpenID provider with them"
if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
  echo "test.sh: installing the test OpenID provider (npm ci in tests/oidc)"
  npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error >/dev/null
fi

# Under /tmp, not the checkout: the postgres user must be able to reach it wherever the checkout is.
pg_dir=$(mktemp -d /tmp/lexgate-pg.XXXXXX)
chmod 755 "$pg_dir"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$pg_dir"
  as_pg=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync -E UTF8 >"$pg_dir/initdb.log" 2>&1 \
  || { cat "$pg_dir/initdb.log" >&2; die "initdb failed"; }
generator_pid=""
stop_all() {
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
  [ -z "$generator_pid" ] || kill "$generator_pid" 2>/dev/null || true
}
trap stop_all EXIT
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
  -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null \
  || { cat "$pg_dir/server.log" >&2; die "PostgreSQL did not start"; }
echo "test.sh: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"

export LEXGATE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port"

# Grounded-generation tests run against a real OpenAI-compatible server with a real model.
generator_dir=${LEXGATE_GENERATOR_DIR:-$root/.lexgate/generator}
gen_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
gen_model=$(awk '$1 == "model" {print $2}' scripts/generator.lock)
OMP_WAIT_POLICY=PASSIVE "$generator_dir/venv/bin/python" scripts/generator-serve.py \
  "$generator_dir/$gen_model" 127.0.0.1 "$gen_port" 2 >"$pg_dir/generator.log" 2>&1 &
generator_pid=$!
for _ in $(seq 1 120); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$gen_port/v1/models', timeout=2)" 2>/dev/null && break
  kill -0 "$generator_pid" 2>/dev/null || { tail -20 "$pg_dir/generator.log" >&2; die "the answer generator did not start"; }
  sleep 0.5
done
python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$gen_port/v1/models', timeout=2)" 2>/dev/null \
  || { tail -20 "$pg_dir/generator.log" >&2; die "the answer generator does not answer on 127.0.0.1:$gen_port"; }
echo "test.sh: answer generator ($gen_model) on 127.0.0.1:$gen_port"
export LEXGATE_TEST_GENERATOR="http://127.0.0.1:$gen_port"
export LEXGATE_TEST_GENERATOR_SHA256=$(awk '$1 == "model" {print $4}' scripts/generator.lock)
export LEXGATE_MODELS_DIR="${LEXGATE_MODELS_DIR:-$root/.lexgate/models}"
export CARGO_PROFILE_DEV_DEBUG=0
cargo test --workspace "$@"
