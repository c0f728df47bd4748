#!/usr/bin/env bash
# Sets up .venv, then trains the demo model (examples/train_classifier.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python examples/train_classifier.py "$@"
