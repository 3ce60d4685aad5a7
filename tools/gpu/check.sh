#!/usr/bin/env bash
# The GPU check (issue #15), one command on a machine with an NVIDIA GPU:
#
#   bash tools/gpu/check.sh
#
# 1. builds with `--features cuda` (the system's nvcc, else tools/cuda/install.sh's);
# 2. runs the parity tests on the GPU (DGG_DEVICE=cuda: every network and the loss's DSP
#    against the reference fixtures, tolerance at least 1e-3 in f32, 2e-2 in f16, 1e-1 in
#    bf16), batched sampling, and the same sampling on the GPU and the CPU;
# 3. times `bench model` and `bench restore` at full size (random weights) on CUDA in f32,
#    f16 and bf16;
# 4. degrades and restores the example clip end to end on CUDA (the tiny model: no weights
#    can be downloaded on these machines; pass DGG_MODEL=DIR to use real ones);
# and prints one table. Logs go to target/gpu-check/. Exits 1 when anything failed, 2 when
# there is no GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=target/gpu-check
mkdir -p "$out"

if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu check: no NVIDIA GPU here (nvidia-smi -L failed)" >&2
    exit 2
fi
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | head -1)
if ! command -v nvcc >/dev/null; then
    bash tools/cuda/install.sh || { echo "gpu check: tools/cuda/install.sh failed" >&2; exit 1; }
    # shellcheck disable=SC1091
    source target/cuda-toolkit/env.sh
fi
# Kernels for this GPU exactly (candle compiles its PTX for one compute capability).
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}

rows=()
failed=0
# step NAME COMMAND...: runs COMMAND, logs it to $out/NAME.log, adds a row.
step() {
    local name=$1 start=$SECONDS
    shift
    if "$@" >"$out/$name.log" 2>&1; then
        rows+=("| $name | pass | $((SECONDS - start)) |")
    else
        failed=1
        # The log's last line says why, in the table.
        rows+=("| $name | FAIL | $((SECONDS - start)) | $(tail -n 1 "$out/$name.log" | tr '|' '/' | cut -c1-160) |")
    fi
}
# The first figure of each row of a bench table (`bench model`: seconds per stage;
# `bench restore`: seconds per step of each method), as `name=seconds` pairs.
figures() {
    awk '/^(stage|method) / {on=1; next} on && NF >= 2 && $2 ~ /^[0-9.]+$/ {printf "%s=%s ", $1, $2}' "$out/$1.log"
}

# A target folder of its own: the CPU build's artefacts stay as they are.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
step build cargo build --release --features cuda --bins --tests
bin=$CARGO_TARGET_DIR/release/dgg-restore
for t in dsp_parity unet_parity vae_parity vocoder_parity text_parity audioldm2_prior guidance_parity batching; do
    step "parity:$t" env DGG_DEVICE=cuda cargo test --release --features cuda --test "$t"
done
step "gpu-vs-cpu" env DGG_DEVICE=cuda cargo test --release --features cuda --test device_parity -- --ignored --nocapture

for dtype in f32 f16 bf16; do
    step "bench-model-$dtype" "$bin" bench model --device cuda --dtype "$dtype"
    rows[-1]="${rows[-1]} $(figures "bench-model-$dtype")|"
    step "bench-restore-$dtype" "$bin" bench restore --device cuda --dtype "$dtype"
    rows[-1]="${rows[-1]} $(figures "bench-restore-$dtype")|"
done

model=${DGG_MODEL:-tests/fixtures/golden}
# A scratch copy: a restore writes its conditioning cache into the model folder.
scratch=$(mktemp -d)
cp -r "$model" "$scratch/model"
step degrade-example "$bin" degrade --task inpaint --gap 1.5-2.0 tests/fixtures/audio/example.wav "$out/gapped.wav"
step restore-example "$bin" restore --task inpaint --gap 1.5-2.0 --device cuda --steps 50 --model "$scratch/model" "$out/gapped.wav" "$out/restored.wav"
step restore-example-stereo-batch "$bin" restore --task superres --cutoff 4000 --device cuda --steps 20 --batch 8 --model "$scratch/model" tests/fixtures/audio/example.wav "$out/superres.wav"
rm -rf "$scratch"

echo
echo "GPU: $gpu; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "| check | result | seconds | figures (s), or why it failed |"
echo "|---|---|---|---|"
for r in "${rows[@]}"; do
    case $r in *"|"*"|"*"|"*"|"*"|"*) echo "$r" ;; *) echo "$r |" ;; esac
done
echo
if [ "$failed" -ne 0 ]; then
    echo "gpu check: FAILED (logs in $out/)" >&2
    exit 1
fi
echo "gpu check: all passed (logs in $out/)"
