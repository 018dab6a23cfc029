#!/usr/bin/env bash
# The GPU benchmark set of the fast path, in one command (about 4 minutes on an H100-class GPU):
#   1. CERTIFY, ResNet-110 at 32x32, N = 100,000 (the papers' CIFAR-10 setting), reference-style fp32 loop
#      against rsmooth in fp32, bf16 + channels_last and bf16 + channels_last + torch.compile, at batch 400 and
#      auto;
#   2. CERTIFY, ResNet-50 at 224x224, N = 10,000 (s/image@100k extrapolates to the papers' N);
#   3. the SmoothAdv-PGD attack (m_test 128, T = 20), fp32 and bf16 + channels_last;
#   4. a slice of training (5 batches of 256) of Gaussian, SmoothAdv-PGD m = 4 T = 10 and SmoothMix, each
#      beside the straightforward fp32 loop.
# Every step has its own time limit, so the whole stays under 5 minutes; a step that runs out prints so.
# Each prints its table; everything is also written to ${OUT:-.}/gpu-benchmarks.txt.
#
#   bash benchmarks/gpu.sh            # from the repository root, with rsmooth importable
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
log="${OUT:-.}/gpu-benchmarks.txt"
: > "$log"

step() {  # step <seconds> <title> <command...>
    local limit=$1 title=$2
    shift 2
    printf '\n== %s\n' "$title" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" = 124 ]; then echo "(stopped at its ${limit} s limit)" | tee -a "$log"; fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
step 110 "CERTIFY ResNet-110 32x32, N0 100, N 100000" \
    python benchmarks/certify_throughput.py --device cuda --images 1 --n 100000 --repeats 1 \
    --variants fp32 bf16+cl bf16+cl+compile --batches 400 auto
step 60 "CERTIFY ResNet-50 224x224, N0 100, N 10000" \
    python benchmarks/certify_throughput.py --device cuda --resnet50 --images 1 --n 10000 --repeats 1 \
    --variants fp32 bf16+cl --batches 400 auto
step 40 "SmoothAdv-PGD attack, ResNet-110, m_test 128, T 20" \
    python benchmarks/attack_throughput.py --device cuda --num-noise 128 --images 1 --steps 20 \
    --variants fp32 bf16+cl --no-study
step 70 "Training slice: 5 batches of 256, ResNet-110" \
    python benchmarks/train_throughput.py --device cuda --batch 256 --batches 5 \
    --methods gaussian smoothadv-pgd-m4-T10 smoothmix-m2 --variants fp32 bf16+cl fp16+cl
echo "written to $log"
