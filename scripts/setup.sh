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
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "$wanted" >"$stamp"
echo "setup: done"
