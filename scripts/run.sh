#!/usr/bin/env bash
# Sets up and runs lexgate on the embedded default (SQLite in .lexgate/data) with the sample corpus:
# installs the pinned ONNX Runtime and embedding model, builds the `lexgate` binary, ingests
# corpus/manifest.toml (idempotent) and serves on http://127.0.0.1:8080/ (LEXGATE_BIND to change).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-models.sh
cargo build --bin lexgate
bin="$root/target/debug/lexgate"
"$bin" check-models
"$bin" ingest corpus/manifest.toml
cat <<'USERS'

Demo users (development sign-in, one click each on the sign-in page):
  alice@acme-bank           analyst, groups staff+compliance, clearance confidential
  bob@acme-bank             analyst, group staff, clearance internal
  fiona@acme-bank           analyst, groups staff+financial-crime (may read the restricted playbook)
  adam@acme-bank            admin
  rita@acme-bank            reviewer
  carol@borealis-insurance  analyst of the second tenant
  dan@borealis-insurance    analyst, groups staff+board
USERS
exec "$bin" serve
