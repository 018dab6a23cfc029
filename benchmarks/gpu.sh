#!/usr/bin/env bash
# The GPU benchmark set, in one command; every step has its own time limit and the limits add up to 290 s, so
# the whole stays under 5 minutes (sizes chosen from the one H200 measurement of issue 23, not measured with
# this script yet). A step stopped by its limit says so; the CERTIFY tables print row by row.
#   0. the bf16 matrix-product rate of the device (the yardstick for the tables' "of bf16 mm" column);
#   1. CERTIFY, ResNet-110 at 32x32, N0 100, N 100,000 (the papers' CIFAR-10 setting): Cohen et al.'s per-image
#      structure at batch 400 in its own process with PyTorch's defaults (as its users run it), then rsmooth
#      fp32 (exact), tf32 (the reference's arithmetic by name) and bf16 + channels_last at batch 400 and auto;
#   2. the same with torch.compile (bf16 + channels_last, batch 4096, N0 4096, N 8192: a single shape, so a
#      single compilation), its compile time in the warm-up column;
#   3. CERTIFY, ResNet-50 at 224x224, N 10,000 (s/image@100k extrapolates to the papers' N), reference first;
#   4. the SmoothAdv-PGD attack (m_test 128, T = 20), fp32 and bf16 + channels_last;
#   5. a slice of training (3 batches of 256) of Gaussian, SmoothAdv-PGD m = 1 T = 2 and SmoothMix m = 2 T = 2
#      (the planner's rows), each beside the straightforward fp32 loop. SmoothAdv at m = 4, T = 10 costs about
#      44 Gaussian steps a batch: from the H200's Gaussian rate, some 70 s for its four runs, over the limit.
# The ratios against the reference are of samples per second, so rows at another N compare too.
# Everything is also written to ${OUT:-.}/gpu-benchmarks.txt.
#
#   bash benchmarks/gpu.sh            # from the repository root, with rsmooth importable
#   bash benchmarks/gpu.sh --smoke    # every step on the CPU at toy size (under 3 minutes; tests/test_benchmarks.py)
#   bash benchmarks/gpu.sh --quickstart shared/data/mnist-8k
#       # only the MNIST quickstart on those real digits at the paper's length with CERTIFY at N = 100,000
#       # (benchmarks/quickstart_real.py; its own call: it takes minutes, the set above under five)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"
log="${OUT:-.}/gpu-benchmarks.txt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: > "$log"
failed=0

step() {  # step <seconds> <title> <command...>
    local limit=$1 title=$2
    shift 2
    printf '\n== %s\n' "$title" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" = 124 ]; then
        echo "(stopped at its ${limit} s limit)" | tee -a "$log"
        [ "$dev" = cpu ] && failed=1  # the smoke run must finish every step
    elif [ "$rc" != 0 ]; then
        echo "(failed: exit status $rc)" | tee -a "$log"
        failed=1
    fi
}

if [ "${1:-}" = "--quickstart" ]; then
    dev=cuda
    digits=${2:?--quickstart needs the folder of the real MNIST digits}
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
    step 560 "MNIST quickstart on real digits, the paper's length, CERTIFY N = 100,000 (every 5th test digit)" \
        python benchmarks/quickstart_real.py "$digits" --workdir "${OUT:-.}/quickstart-real" --skip 5
    echo "written to $log"
    exit $failed
fi

if [ "${1:-}" = "--smoke" ]; then
    # Toy sizes on the CPU: the same scripts and options, so that the GPU run cannot rot unnoticed.
    dev=cpu
    n110=(--n0 8 --n 40 --depth 8)
    compile=(--n0 16 --n 32 --depth 8 --batches 16)
    n50=(--n0 2 --n 4 --size 32)
    attack=(--num-noise 4 --steps 2 --depth 8)
    train=(--batch 4 --batches 1 --repeats 1 --depth 8 --methods gaussian smoothadv-pgd-m1 smoothmix-m2)
    batch=(--batch 16)
    variants=(fp32 bf16+cl)  # tf32 is CUDA's (refused on a CPU)
    limits=(20 40 20 30 40 20 40)
    # Inductor's C++ compilation takes minutes on a small CPU: the smoke run checks the step's plumbing with
    # torch.compile disabled (a no-op); the compiled path itself is tested in tests/test_fastpath.py.
    export TORCH_COMPILE_DISABLE=1
    echo "smoke run: every step on the CPU at toy size" | tee -a "$log"
else
    dev=cuda
    n110=(--n0 100 --n 100000)
    compile=(--n0 4096 --n 8192 --batches 4096)  # one shape, so one compilation (dynamic=False)
    n50=(--n0 100 --n 10000)
    attack=(--num-noise 128 --steps 20)
    train=(--batch 256 --batches 3 --repeats 1 --methods gaussian smoothadv-pgd-m1 smoothmix-m2)
    batch=(--batch 400)
    variants=(fp32 tf32 bf16+cl)
    limits=(10 25 90 35 20 45 25 40)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
fi
[ "$dev" = cpu ] && limits=(10 "${limits[@]}")

step "${limits[0]}" "bf16 matrix-product rate" \
    python benchmarks/matmul_rate.py --device $dev --json "$work/matmul.json"
step "${limits[1]}" "CERTIFY ResNet-110 32x32: Cohen et al.'s structure, own process, PyTorch defaults" \
    python benchmarks/reference_certify.py --device $dev --images 1 "${n110[@]}" "${batch[@]}" \
    --json "$work/ref110.json"
step "${limits[2]}" "CERTIFY ResNet-110 32x32: rsmooth" \
    python benchmarks/certify_throughput.py --device $dev --images 1 --repeats 1 "${n110[@]}" \
    --variants "${variants[@]}" --batches "${batch[1]}" auto \
    --reference-json "$work/ref110.json" --matmul-json "$work/matmul.json"
if [ "$dev" = cpu ]; then compile_variant=fp32+compile; else compile_variant=bf16+cl+compile; fi
step "${limits[3]}" "CERTIFY ResNet-110 32x32: rsmooth with torch.compile (compile time: warm-up column)" \
    python benchmarks/certify_throughput.py --device $dev --images 1 --repeats 1 "${compile[@]}" \
    --variants $compile_variant --reference-json "$work/ref110.json" --matmul-json "$work/matmul.json"
step "${limits[4]}" "CERTIFY ResNet-50: Cohen et al.'s structure, own process, PyTorch defaults" \
    python benchmarks/reference_certify.py --device $dev --resnet50 --images 1 "${n50[@]}" "${batch[@]}" \
    --json "$work/ref50.json"
step "${limits[5]}" "CERTIFY ResNet-50: rsmooth" \
    python benchmarks/certify_throughput.py --device $dev --resnet50 --images 1 --repeats 1 "${n50[@]}" \
    --variants "${variants[@]}" --batches "${batch[1]}" auto \
    --reference-json "$work/ref50.json" --matmul-json "$work/matmul.json"
step "${limits[6]}" "SmoothAdv-PGD attack" \
    python benchmarks/attack_throughput.py --device $dev --images 1 "${attack[@]}" --variants fp32 bf16+cl --no-study
step "${limits[7]}" "Training slice" \
    python benchmarks/train_throughput.py --device $dev "${train[@]}" --variants fp32 bf16+cl fp16+cl
echo "written to $log"
exit $failed
