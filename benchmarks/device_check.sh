#!/usr/bin/env bash
# The evaluation engines' GPU checks (issue 22), prepared to run in ONE call of the device tool on a
# lent NVIDIA machine, whose image has torch, lightning, torchmetrics, h5py and scipy but not the
# command line's jsonargparse:
#
#     make device-wheels    # here, once: jsonargparse and its two helpers as wheels, into .whl/
#     run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=540)
#
# It runs, logging each step to $OUT (which the device tool brings back):
#   1. the `gpu`-marked tests (tests/test_gpu.py): mixed precision, `fit` on CUDA, and the batched
#      fine-tuning engine against the per-model loop on CUDA, both recipes;
#   2. benchmarks/evaluation.py --device cuda on the fine-tuning protocol (32 DEAP-shaped subjects x
#      3 rows = 96 models), loop vs batched, COMPARE_EPOCHS epochs: the same epochs and metrics, the
#      ratio, both projected to 500 epochs;
#   3. the target itself: the batched engine alone on that protocol for the full FULL_EPOCHS (500)
#      epochs, aimed at under 2 minutes (`--engines batched`);
#   4. one probe call (PROBE_SUBJECTS (15) SEED-IV-shaped subjects x 2 encoders x 5 L2 values x 3
#      folds + refits), loop vs batched with `--device cuda`: the encoders embed on the GPU and,
#      since session 27, the probe solver runs there too (`probe.solver_device`; session 26's run of
#      this step, before that, timed the machine's 16 CPU cores);
#   4b. (`probe_float32`, not in the default STEPS) the same probe call with the solver's products and
#      history in float32 (`--probe_precision float32`), as in session 27's run: the GPU's default
#      (float64, `logistic.working_dtype`) against it, on one machine;
#   5. (`lpft`, not in the default STEPS) the shipped LP-FT protocol, loop vs batched, at the
#      benchmark's default size (LPFT_SUBJECTS (8) subjects x 3 rows x (3 folds + refit), LPFT_STEPS
#      (20) steps).
#   5b. (`lpft_torch_default`, not in the default STEPS) the same without the protocol's IEEE float32
#      guard (`--float32_precision torch_default`: cuDNN's convolutions in TF32, torch's default), to
#      show on one machine what the guard changes (session 28's `lpft` ran before the guard).
# STEPS chooses which run, in this order (default: "gpu_tests compare full_length probe"); e.g.
# STEPS="gpu_tests probe lpft" once the fine-tuning figures are in (session 27).
# Each benchmark step measures once (`--repeats 1`, not the benchmark's default 3): the device's
# minutes are few, and step 3 alone is the target's whole length.
# Written without a GPU (session 23); first run on a lent NVIDIA H200 in session 26 (torch 2.11.0+cu130,
# the step limits below, passed then as variables): 302 s for the whole call, every step passed, the
# 500-epoch step 88 s (logs: benchmarks/device_runs/2026-12-04-h200/; figures: README, Performance).
# Session 27: STEPS="gpu_tests probe lpft" PROBE_LIMIT=240 LPFT_LIMIT=180, 269 s, every step ran (the
# probe step's loop 37 s; logs: benchmarks/device_runs/2026-12-04-h200-session27/).
# Session 28: STEPS="gpu_tests probe probe_float32 lpft" PROBE_LIMIT=200 LPFT_LIMIT=120, 273 s, every
# step ran (the float64 probe the same as the loop at 48.85x; LP-FT 3 rows apart, from TF32, found
# after; logs: benchmarks/device_runs/2026-12-04-h200-session28/). What the next device should run
# (the engines under the protocol's IEEE float32 guard, and LP-FT without it beside them):
# STEPS="gpu_tests lpft lpft_torch_default compare" with timeout_s=540 (~250 s expected).
# On the CPU, `DEVICE=cpu COMPARE_EPOCHS=1 FULL_EPOCHS=2 SUBJECTS=4 PROBE_SUBJECTS=3
# bash benchmarks/device_check.sh` runs the same steps small (the gpu tests skip).
# Session 24 ran it so (3 subjects) in a fresh venv holding only packages the device image lists
# (torch 2.13 CPU, lightning, torchmetrics, numpy, scipy, h5py, einops, pytest, safetensors,
# huggingface_hub, scikit-learn; no jsonargparse, mne or wandb) with PYTHON=that venv's python:
# the carried wheels installed, the gpu tests collected (and skipped), both benchmark steps ran.
set -uo pipefail
OUT=${OUT:-/tmp/device_check}
DEVICE=${DEVICE:-cuda}
COMPARE_EPOCHS=${COMPARE_EPOCHS:-5}
FULL_EPOCHS=${FULL_EPOCHS:-500}
SUBJECTS=${SUBJECTS:-32}
PROBE_SUBJECTS=${PROBE_SUBJECTS:-15}
# each benchmark step stopped after this many seconds (exit 124, logged as FAILED), so that the other
# steps' logs still come back within the device tool's 10-minute command; the full-length step is
# aimed at 120 s, so 240 s already tells how far it is from the target; with the gpu tests (28 s on
# the H200) the steps' limits sum to ~520 s, inside `timeout_s=540`
COMPARE_LIMIT=${COMPARE_LIMIT:-150}
FULL_LIMIT=${FULL_LIMIT:-240}
PROBE_LIMIT=${PROBE_LIMIT:-100}
LPFT_LIMIT=${LPFT_LIMIT:-150}
LPFT_SUBJECTS=${LPFT_SUBJECTS:-8}
LPFT_STEPS=${LPFT_STEPS:-20}
STEPS=" ${STEPS:-gpu_tests compare full_length probe} "
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" > /dev/null; then  # the carried wheels, outside the image's environment (a
    # folder of this run's own: two runs at once, as the test suite's, raced on one shared folder)
    site=$(mktemp -d)
    trap 'rm -rf "$site"' EXIT  # this run's copy of the wheels, not left behind in /tmp
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:$site"
fi
failed=0
step() {  # step NAME COMMAND...: run it (if STEPS names it), its output to the screen and to $OUT/NAME.log
    local name=$1
    shift
    [[ $name == device || $STEPS == *" $name "* ]] || return 0
    echo "== $name: $*" | tee "$OUT/$name.log"
    "$@" 2>&1 | tee -a "$OUT/$name.log" || { echo "== $name FAILED" | tee -a "$OUT/$name.log"; failed=1; }
}
step device "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
step gpu_tests "$PY" -m pytest -p no:cacheprovider -q -rA -m gpu tests/test_gpu.py
step compare timeout "$COMPARE_LIMIT" "$PY" benchmarks/evaluation.py --device "$DEVICE" --processes 1 --workloads finetune \
    --repeats 1 --subjects "$SUBJECTS" --epochs "$COMPARE_EPOCHS" --full_epochs "$FULL_EPOCHS"
step full_length timeout "$FULL_LIMIT" "$PY" benchmarks/evaluation.py --device "$DEVICE" --processes 1 --workloads finetune \
    --engines batched --repeats 1 --subjects "$SUBJECTS" --epochs "$FULL_EPOCHS" --full_epochs "$FULL_EPOCHS"
step probe timeout "$PROBE_LIMIT" "$PY" benchmarks/evaluation.py --device "$DEVICE" --processes 1 --workloads probe \
    --engines loop batched --repeats 1 --probe_subjects "$PROBE_SUBJECTS"
step probe_float32 timeout "$PROBE_LIMIT" "$PY" benchmarks/evaluation.py --device "$DEVICE" --processes 1 \
    --workloads probe --engines loop batched --repeats 1 --probe_subjects "$PROBE_SUBJECTS" --probe_precision float32
step lpft timeout "$LPFT_LIMIT" "$PY" benchmarks/evaluation.py --device "$DEVICE" --processes 1 --workloads finetune_lpft \
    --engines loop batched --repeats 1 --lpft_subjects "$LPFT_SUBJECTS" --lpft_steps "$LPFT_STEPS"
step lpft_torch_default timeout "$LPFT_LIMIT" "$PY" benchmarks/evaluation.py --device "$DEVICE" --processes 1 \
    --workloads finetune_lpft --engines loop batched --repeats 1 --lpft_subjects "$LPFT_SUBJECTS" \
    --lpft_steps "$LPFT_STEPS" --float32_precision torch_default
echo "== done, failed=$failed; logs in $OUT"
exit "$failed"
