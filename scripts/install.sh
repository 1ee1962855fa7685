#!/usr/bin/env bash
# Install vaekit into the current Python environment without ever pulling CUDA wheels by accident.
#
# - If torch is already importable (a CPU or a CUDA build), it is kept as it is.
# - Otherwise the CPU build is installed first: `torch==2.13.0` (on this kind of machine pip finds
#   the CPU wheel on disk), falling back to PyTorch's CPU index elsewhere.
# Then vaekit itself is installed in editable mode with the extras given as arguments (e.g. test).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
extras="${1:-}"

if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "keeping installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
    "$PYTHON" -m pip install -q "torch==2.13.0" \
        || "$PYTHON" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
target="."
[ -n "$extras" ] && target=".[${extras}]"
"$PYTHON" -m pip install -q -e "$target"
"$PYTHON" -c "import torch, vaekit; print(f'vaekit {vaekit.__version__} with torch {torch.__version__}')"
