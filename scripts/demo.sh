#!/usr/bin/env bash
# Sets up .venv with the `examples` extra, then trains the demo CNN on scikit-learn's handwritten
# digits (examples/train_classifier.py; its options pass through, e.g. --epochs 30 or --resume).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh examples
echo "demo: running examples/train_classifier.py $*"
exec .venv/bin/python examples/train_classifier.py "$@"
