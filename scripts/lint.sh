#!/usr/bin/env bash
# Static checks, run by CI after the tests: mypy over jaxmodule/ (configured in pyproject.toml's
# [tool.mypy]; zero errors is the rule), `ruff format --check` and `ruff check` (with the preview
# blank-line rules, configured in [tool.ruff]) over every Python directory. Exits non-zero on any
# finding; `ruff format <dirs>` and `ruff check --fix <dirs>` fix most of them. Sets up .venv with the `test` extra first (a no-op when scripts/test.sh already did).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
status=0
echo "lint: mypy"
.venv/bin/python -m mypy || status=1
dirs=(jaxmodule tests examples benchmarks tools scripts)
echo "lint: ruff format --check ${dirs[*]}"
.venv/bin/python -m ruff format --check "${dirs[@]}" || status=1
echo "lint: ruff check ${dirs[*]}"
.venv/bin/python -m ruff check "${dirs[@]}" || status=1
exit "$status"
