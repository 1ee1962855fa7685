#!/usr/bin/env bash
# The methods comparison of docs/domains/sprites.md: collect, sweep, then score every trial (and
# seed 0's epoch checkpoints, for MIG against steps). Resumable: run it again after a stop.
set -euo pipefail
RUNS="${RUNS:-runs}"
DATA="${DATA:-data/sprites_25k.npz}"
EPOCHS="${EPOCHS:-3}"
[ -f "$DATA" ] || vaekit collect sprites --count 25000 --seed 0 --out "$DATA"
vaekit sweep run sprites --space examples/sweeps/sprites_methods.yaml --config examples/configs/sprites_dlib.yaml \
    --data "$DATA" --set train.epochs="$EPOCHS" --set train.checkpoint_every=1 --runs-dir "$RUNS"
mkdir -p "$RUNS/sprites_methods_eval"
for run in "$RUNS"/sprites_methods-t*; do
    id=$(basename "$run")
    out="$RUNS/sprites_methods_eval/$id.json"
    [ -s "$out" ] || vaekit eval "$id" --runs-dir "$RUNS" --split train --disentanglement --factor-vae-votes 500 \
        --json > "$out.tmp" && mv "$out.tmp" "$out"
done
for run in "$RUNS"/sprites_methods-t*; do  # MIG against steps: the epoch checkpoints of seed 0
    id=$(basename "$run")
    grep -q "seed: 0$" "$run/config.yaml" || continue
    for ckpt in "$run"/checkpoints/epoch_*.pt; do
        name=$(basename "$ckpt" .pt)
        out="$RUNS/sprites_methods_eval/$id-$name.json"
        [ -s "$out" ] || vaekit eval "$id" --runs-dir "$RUNS" --split train --checkpoint "$name" --disentanglement \
            --factor-vae-votes 500 --json > "$out.tmp" && mv "$out.tmp" "$out"
    done
done
