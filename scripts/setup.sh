#!/usr/bin/env bash
# Creates .venv (if missing) and installs jaxmodule (editable) with the given extras. Idempotent.
#
#   bash scripts/setup.sh                  # the `test` extra
#   bash scripts/setup.sh examples         # one extra
#   bash scripts/setup.sh test,examples    # several (or: bash scripts/setup.sh test examples)
#
# A run that finds the same extras already installed from the same pyproject.toml skips pip.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="$(IFS=,; echo "${*:-test}")"
extras="${extras// /}"
known="$(awk '/^\[/ {in_extras = ($0 == "[project.optional-dependencies]")} in_extras && /^[a-z0-9_-]+ = \[/ {print $1}' pyproject.toml)"
for extra in ${extras//,/ }; do
  if ! grep -qx -- "$extra" <<<"$known"; then
    echo "setup: unknown extra '$extra'; pyproject.toml has: $(echo $known)" >&2
    exit 2
  fi
done
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv ($(python3 --version))"
  python3 -m venv .venv
fi
stamp=".venv/.jaxmodule-installed-${extras//,/-}"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "setup: .venv already has jaxmodule[${extras}]"
  exit 0
fi
echo "setup: installing jaxmodule[${extras}] into .venv (first time: a few minutes)"
log="$(mktemp)"  # pip's output is shown only if it fails
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e ".[${extras}]"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "setup: installing jaxmodule[${extras}] failed (pip's output above)" >&2
  exit 1
fi
rm -f "$log"
echo "$wanted" >"$stamp"
echo "setup: done"
