#!/usr/bin/env bash
# Imports in the server crate only go down: http -> service -> store, and cli -> service. The
# shared vocabulary (domain, error, settings) imports none of the layers. Only the store sees
# sea-orm and its entities; the web layer makes no indexer calls (its types come through
# `domain`). Prints every reference that breaks the rule and fails when there is one.
set -euo pipefail
cd "$(dirname "$0")/../server/src"

allowed() {
  case $1 in
    http) echo "http service domain error settings" ;;
    service) echo "service store domain error settings" ;;
    store) echo "store domain error settings" ;;
    cli) echo "cli service domain error settings" ;;
    *) echo "domain error settings" ;;
  esac
}

# A file without its comment lines (doc links are not imports); line numbers are kept.
code() { sed -E 's#^[[:space:]]*//.*$##' "$1"; }

status=0
# rule FILE PATTERN WHY: fails on every code line of FILE matching PATTERN.
rule() {
  local hits
  hits=$(code "$1" | grep -nE "$2" || true)
  if [ -n "$hits" ]; then
    echo "$hits" | sed "s|^|check-layers: $1:|; s|$|  ($3)|" >&2
    status=1
  fi
}

while IFS= read -r file; do
  case $file in lib.rs | main.rs) continue ;; esac
  layer=${file%%/*}
  [ "$layer" = "$file" ] && layer=${file%.rs}
  ok=$(allowed "$layer")
  while IFS=: read -r line target; do
    case " $ok " in
      *" $target "*) ;;
      *)
        echo "check-layers: $file:$line: $layer may not use crate::$target" >&2
        status=1
        ;;
    esac
  done < <(code "$file" | grep -noE 'crate::[a-z_]+' | sed -E 's/crate:://')
  if [ "$layer" != store ]; then
    [ "$file" = error.rs ] || rule "$file" '\bsea_orm\b' 'only the store sees sea-orm'
    rule "$file" 'store::entities' 'entities stay in the store; use its row types'
  fi
  if [ "$layer" = http ]; then
    rule "$file" '\bindexer::' 'no indexer calls from http; its types come through domain'
  fi
done < <(find . -name '*.rs' | sed 's|^\./||' | sort)

if [ $status = 0 ]; then
  echo "check-layers: imports go down only (http -> service -> store, cli -> service)"
fi
exit $status
