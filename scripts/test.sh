#!/usr/bin/env bash
# Sets up .venv with the test extra, then runs the whole test suite (torch differential tests included),
# except tests marked `slow` (run those with: scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -n 2 -m "not slow" "$@"
