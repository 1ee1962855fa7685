#!/usr/bin/env bash
# The methods comparison of docs/domains/sprites.md: collect, sweep, then score every trial, and seed
# 0's epoch checkpoints for MIG against steps. Resumable: run it again after a stop.
#   EPOCHS=10 STUDY=sprites_methods_e10 CURVE_EPOCHS="1 3" bash scripts/sprites_methods.sh
set -euo pipefail
RUNS="${RUNS:-runs}"
DATA="${DATA:-data/sprites_25k.npz}"
EPOCHS="${EPOCHS:-3}"
STUDY="${STUDY:-sprites_methods}"
CURVE_EPOCHS="${CURVE_EPOCHS:-1 2}"  # the final epoch is scored with every trial
[ -f "$DATA" ] || vaekit collect sprites --count 25000 --seed 0 --out "$DATA"
vaekit sweep run sprites --space examples/sweeps/sprites_methods.yaml --config examples/configs/sprites_dlib.yaml \
    --data "$DATA" --study "$STUDY" --set train.epochs="$EPOCHS" --set train.checkpoint_every=1 --runs-dir "$RUNS"
scores="$RUNS/${STUDY}_eval"
mkdir -p "$scores"
score() {  # score RUN_ID OUT [--checkpoint epoch_NNN]
    [ -s "$2" ] || { vaekit eval "$1" --runs-dir "$RUNS" --split train --disentanglement --factor-vae-votes 500 \
        --json "${@:3}" > "$2.tmp" && mv "$2.tmp" "$2"; }
}
for run in "$RUNS/$STUDY"-t*; do
    score "$(basename "$run")" "$scores/$(basename "$run").json"
done
for run in "$RUNS/$STUDY"-t*; do
    grep -q "^seed: 0$" "$run/config.yaml" || continue
    for epoch in $CURVE_EPOCHS; do
        name=$(printf "epoch_%03d" "$epoch")
        score "$(basename "$run")" "$scores/$(basename "$run")-$name.json" --checkpoint "$name"
    done
done
