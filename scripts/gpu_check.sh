#!/usr/bin/env bash
# `make gpu-check`: the CUDA-marked tests (tests/test_cuda.py: bf16 autocast, torch.compile,
# channels-last, DDP over NCCL at world size 1, a mid-epoch resume), then the training throughput
# benchmark on the GPU. Without a CUDA device the tests skip, saying so, and this exits 1 with one
# line saying that nothing was checked on a GPU.
#
#   make gpu-check                     # or: bash scripts/gpu_check.sh [extra train_throughput.py options]
set -euo pipefail
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" -m pytest -q -rs -m cuda -p no:cacheprovider tests/test_cuda.py

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu-check: no CUDA device is present (torch $("$PYTHON" -c 'import torch; print(torch.__version__)'):" \
         "torch.cuda.is_available() is False); the CUDA tests were skipped and the benchmark not run." >&2
    exit 1
fi

"$PYTHON" benchmarks/train_throughput.py --device cuda --models conv2d conv2d_frames images \
    --batch-sizes 128 512 --settings plain fp32 bf16 bf16+cl bf16+cl+compile --rounds 3 --samples 8192 "$@"
