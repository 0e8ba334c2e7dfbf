#!/usr/bin/env bash
# The project's test command (README, second command; .ci/run calls it): install, then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
python3 -m pytest "$@"
