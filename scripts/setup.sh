#!/usr/bin/env bash
# Create .venv and install fuserec with pinned dependencies. Safe to rerun: it only installs
# again when pyproject.toml or requirements.lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi

stamp=.venv/.fuserec-install-stamp
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c "import fuserec" 2>/dev/null; then
    echo "installing fuserec and its pinned dependencies into .venv"
    # torch==2.13.0 is the CPU build; the lock keeps every other package at a tested version
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        -c requirements.lock -e ".[test]"
    echo "$want" > "$stamp"
fi
echo "environment ready: $(pwd)/.venv"
