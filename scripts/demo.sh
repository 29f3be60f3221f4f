#!/usr/bin/env bash
# The main job: set up, then run the demo pipeline. Extra arguments go to `fuserec demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the demo catalog's spoken episodes are narrated by espeak-ng; without it there are none
if ! command -v espeak-ng >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y espeak-ng; } \
        || echo "espeak-ng could not be installed: the demo catalog will have no spoken episodes"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/fuserec demo "$@"
