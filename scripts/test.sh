#!/usr/bin/env bash
# Set up, lint, then run the whole test suite (fast and slow tests, real models included).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check src tests benchmarks
# the web page test drives Debian's chromium through Playwright (never `playwright install`)
if [ ! -x /usr/bin/chromium ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
fi
# the speech-to-text test synthesises a spoken clip with espeak-ng
if ! command -v espeak-ng >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y espeak-ng
fi
# two worker processes (pytest-xdist): a test that crashes its
# process is reported as that test's failure, the worker is replaced and the rest still runs
.venv/bin/python -m pytest -m "slow or not slow" -n "${FUSEREC_TEST_WORKERS:-2}" "$@"
