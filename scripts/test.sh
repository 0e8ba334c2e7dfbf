#!/usr/bin/env bash
# The project's test command (README, second command; .ci/run calls it): install the project,
# start the real services the integration tests use, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
python3 -m ruff check .  # lint (pyproject.toml: pycodestyle with line length, imports, bugbear, pyupgrade)
python3 -m ruff format --check .
python3 -m mypy  # types of lure_engine/ and lure_core/ (pyproject.toml [tool.mypy])
source scripts/services.sh
export LURE_REQUIRE_SERVICES=1  # integration tests fail, not skip, when a service is missing
# four test processes (one torch thread each: tests/conftest.py), idle ones taking queued tests
# from busy ones: most tests wait on real processes (an update, a restart), and three left a
# third of two cores idle
python3 -m pytest -n 4 --dist worksteal "$@"
