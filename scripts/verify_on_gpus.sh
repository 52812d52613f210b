#!/bin/bash
# Run once on a machine with one or two GPUs before grading a class there (docs/gpu-verification.md).
# It ends with one verdict line, VERIFIED or NOT VERIFIED; everything measured stays in the results folder.
#
#   bash scripts/verify_on_gpus.sh                 # results in benchmarks/results/<date>-gpus-<host>/
#   bash scripts/verify_on_gpus.sh OUT_DIR
#   bash scripts/verify_on_gpus.sh --quick [OUT]   # the proof that fits minutes on one GPU (<date>-gpus-quick-<host>/)
#
# --quick: environment, then `doctor --quick`: CUDA under each sandbox layer alone and under all of them; with one
# GPU the asynchrony claims, the one-GPU timing verdicts (graded in the sandbox: its self-test included), GPU-vs-CPU
# training numerics; with two the reference and four mutants graded on the GPUs and one timing draw per scenario;
# the cost model against the chip op by op for the nearest profile. No installs, no network. Expected: about 2-3
# minutes on one GPU, 3-5 on two (docs/gpu-verification.md says where the time goes).
#
# Steps (each one's output in OUT_DIR/<step>.log; a failing step does not stop the others):
#   environment  Python, torch, CUDA, the GPUs, this checkout's commit (and nvidia-smi's view in nvidia-smi.txt)
#   doctor       python -m autograder doctor: with two GPUs every sample and mutant graded with --devices cuda against
#                the verdicts autograder/samples.py expects, real vs simulated verdicts, the timing checks' margins,
#                the GPU setup (compute mode, MPS, kernels the torch build lacks); with one GPU what one GPU can prove
#   samples      python -m autograder grade --devices cuda (the bundled samples, through the instructor's command),
#                compared with their expected verdicts (scripts/compare_sample_verdicts.py)
#   gpu-tests    the tests marked cuda2: the seed program, the self-test, every way of waiting seen by the recorder,
#                the pipeline overlap, the profiler
#   timeline     python -m autograder timeline --devices cuda, and --sweep: the pictures, on these GPUs
# With one GPU only environment and doctor run (samples, tests and timeline need two).
# The Python is $PRACTICAL8_PYTHON (default: python on PATH, e.g. the activated .venv). Exit status 0 only when
# VERIFIED. Commit the results folder: it is the record that this machine grades correctly.
set -uo pipefail
SECONDS=0
cd "$(dirname "$0")/.."
PYTHON=${PRACTICAL8_PYTHON:-python}
QUICK=0
if [ "${1:-}" = "--quick" ]; then
    QUICK=1
    shift
fi
OUT=${1:-benchmarks/results/$(date +%Y-%m-%d)-gpus$([ "$QUICK" = 1 ] && echo -quick)-$(hostname -s 2>/dev/null || echo machine)}
mkdir -p "$OUT"
failed=()
ran=()

step() {  # step NAME COMMAND...: run it with its output in OUT/NAME.log; remember whether it failed
    local name=$1
    shift
    echo "== $name"
    ran+=("$name")
    if "$@" >"$OUT/$name.log" 2>&1; then
        echo "   ok"
    else
        echo "   FAILED: see $OUT/$name.log"
        failed+=("$name")
    fi
}

gpus=$("$PYTHON" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" \
    2>/dev/null | tail -n 1)
case "$gpus" in ''|*[!0-9]*) gpus=0 ;; esac
step environment "$PYTHON" -c "
import platform, subprocess, torch
print('python', platform.python_version(), '| torch', torch.__version__, '| CUDA', torch.version.cuda)
print('GPUs:', [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [])
print('commit:', subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True).stdout.strip())
"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
fi

if [ "$gpus" -lt 1 ]; then
    echo "NOT VERIFIED: torch sees no CUDA GPU here (results in $OUT)" | tee "$OUT/verdict.txt"
    exit 1
fi
if [ "$QUICK" = 1 ]; then
    step doctor "$PYTHON" -m autograder doctor --quick --out "$OUT/doctor"
    scope="quick proof"
else
    step doctor "$PYTHON" -m autograder doctor --out "$OUT/doctor"
    if [ "$gpus" -ge 2 ]; then
        step samples bash -c '"$1" -m autograder grade --devices cuda --results "$2/samples/results.json" &&
                               "$1" scripts/compare_sample_verdicts.py "$2/samples"' _ "$PYTHON" "$OUT"
        step gpu-tests "$PYTHON" -m pytest -q -m cuda2 -k "not doctor" -p no:cacheprovider tests/
        step timeline bash -c '"$1" -m autograder timeline --devices cuda --out "$2/timeline.png" &&
                               "$1" -m autograder timeline --devices cuda --sweep --out "$2/sweep.png"' _ "$PYTHON" "$OUT"
        scope="two GPUs"
    else
        scope="one GPU: what one GPU can prove (grading needs two)"
    fi
fi

if [ ${#failed[@]} -eq 0 ]; then
    echo "VERIFIED on $gpus GPU(s), $scope: ${ran[*]} all passed (results in $OUT, ${SECONDS} s)" | tee "$OUT/verdict.txt"
    exit 0
fi
echo "NOT VERIFIED on $gpus GPU(s): ${failed[*]} failed, of ${ran[*]} (results in $OUT, ${SECONDS} s)" |
    tee "$OUT/verdict.txt"
exit 1
