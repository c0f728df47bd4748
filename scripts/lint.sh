#!/usr/bin/env bash
# Static checks, run by CI after the tests: mypy over jaxmodule/ (configured in pyproject.toml's
# [tool.mypy]; zero errors is the rule) and ruff over jaxmodule/ and tests/. Exits non-zero on any
# finding. Sets up .venv with the `test` extra first (a no-op when scripts/test.sh already did).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
status=0
echo "lint: mypy"
.venv/bin/python -m mypy || status=1
echo "lint: ruff check jaxmodule tests"
.venv/bin/python -m ruff check jaxmodule tests || status=1
exit "$status"
