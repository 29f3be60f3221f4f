#!/usr/bin/env bash
# The main job: set up, then run the demo pipeline. Extra arguments go to `fuserec demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/fuserec demo "$@"
