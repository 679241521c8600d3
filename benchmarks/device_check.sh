#!/usr/bin/env bash
# The GPU checks of issues #12 and #13 as one prepared command, for a session that is lent a
# GPU (the device tool; 15 minutes of device time, the machine's start included). Here, once:
#
#   make device-packages      # .whl/ (ignored): torchattacks' wheel and pyautoattack's code (0.2 MB)
#   cp ../shared/data/cifar10-mini.npz data/mini/                        # or make sure it is there
#   python benchmarks/device_campaign.py size --carry .whl --carry data/mini/cifar10-mini.npz
#                             # what the call sends against its 64 MiB: move the untracked files it names out
#
# then run it there with carry [".whl", "data/mini/cifar10-mini.npz"] and timeout_s 600:
#
#   BUDGET=570 bash benchmarks/device_check.sh       # steps epoch, switches, compile, as far as 570 s go
#   BUDGET=570 STEPS=bf16search bash benchmarks/device_check.sh        # a call of its own
#   BUDGET=570 STEPS="bf16 train" bash benchmarks/device_check.sh      # measured already (20261204)
#
# (one device call runs at most 10 minutes; STEPS names the steps a call runs, BUDGET caps them
# all: each step's limit is cut to what is left.) Each step writes its record under $OUT as
# soon as it ends, and bench.py after each piece (so a step cut short keeps what it measured).
# What the H200 sessions found (data/runs/bench/gpu-h200-20261204*.json) set the default call:
# the exact search step 12.6-12.8 s against PC-DARTS' 0.72-1.16 s (two processes on one
# machine timed PC-DARTS that far apart: bench.py now times it again after the other modes),
# the explicit second derivatives 7.3 s, the fast paths 2.3 s and with the batched power
# iteration 1.97 s; the bf16 retraining check and the paper-size retraining step are measured;
# the switches step spent its whole limit on the Lanczos mode (20 s a step) and the compile
# step its whole 171 s compiling. So:
#   1. epoch: one search epoch at the paper's sizes (8 cells, C = 16, batch 128): PC-DARTS
#      (timed first and last), the explicit second derivatives (racl_explicit), the fast paths
#      without and with the batched power iteration: the ratios under the bracketed reference;
#   2. bf16: fp32 against bf16 on a mini retraining (clean and PGD-20 accuracy): measured;
#   3. switches: the search epoch of PC-DARTS and the fastest RACL mode under every switch;
#   4. train: the paper's retraining step (20 cells, C = 36, PGD-10, batch 128) under every
#      switch, with ResNet-18 and Table 4's ResNet-110, and the search's pieces: measured;
#   5. compile: that retraining step under torch.compile with CUDA graphs (reduce-overhead:
#      what removes launches), its compile time apart, against the same step eager;
#   6. bf16search: fp32 against bf16 on the mini search (the searched cell), with the explicit
#      second derivatives: two exact searches, minutes each on the H200 (its exact step is
#      launch-bound), so a call of its own: STEPS=bf16search.
# Copy the JSON files into data/runs/bench (the book's introduction shows the newest of each
# device), and say what they show in the issue.
# STEP_SCALE=0.2 bash benchmarks/device_check.sh --device cpu runs it as a quick CPU rehearsal.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/racl-device-check}
mkdir -p "$OUT"
DEVICE=cuda
[ "${1:-}" = "--device" ] && DEVICE=$2
SCALE=${STEP_SCALE:-1}
. benchmarks/device_env.sh  # PYTHONPATH, the carried packages, PY
LOG="$OUT/device_check.log"
stamp=$(date -u +%Y%m%d)
gpu=$( { nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo cpu; } | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9._-')
{ date -u; nvidia-smi 2>/dev/null | head -15; $PY -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'; } >>"$LOG" 2>&1

STEPS=${STEPS:-epoch switches compile}
# BUDGET=S: the whole call's seconds (0: none). A step's limit is cut to what is left of it, and a
# step that would get under 30 s is skipped, so that one device call runs every step it can
# inside its limit (the device tool stops a call at 10 minutes) and a late step uses what the
# earlier ones left.
BUDGET=${BUDGET:-0}
START=$(date +%s)
step() {  # step NAME SECONDS COMMAND...: run with a limit of SECONDS x STEP_SCALE, log, report
  local name=$1 secs t0 rc left; secs=$(awk "BEGIN{print int($2 * $SCALE + 1)}"); shift 2
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  if [ "$BUDGET" -gt 0 ]; then
    left=$(( START + BUDGET - $(date +%s) ))
    [ "$left" -lt "$secs" ] && secs=$left
    if [ "$secs" -lt 30 ]; then echo "== $name: skipped, ${left}s of the budget left" | tee -a "$LOG"; return 0; fi
  fi
  echo "== $name (limit ${secs}s): $*" | tee -a "$LOG"
  t0=$(date +%s)
  timeout "$secs" "$@" >>"$LOG" 2>&1; rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - t0 ))s" | tee -a "$LOG"
}

EPOCH="--part epoch --epoch-sizes paper --epoch-steps 2 --epoch-warmup 0"
# 1. #12: one search epoch at the paper's sizes, exact against the fast paths and PC-DARTS
step epoch 180 $PY benchmarks/bench.py $EPOCH --epoch-modes pcdarts,racl_explicit,racl_fast,racl_fast_batched --variant baseline \
    --device "$DEVICE" --json "$OUT/bench-$gpu-$stamp-epoch.json"
# 2. #12: does bf16 change the robust accuracy of a short retraining?
step bf16 200 $PY benchmarks/bf16_check.py --device "$DEVICE" --n 1000 --part train --out "$OUT/bf16-$gpu-$stamp.json"
# 3. #12: the search epoch under every speed switch (the modes that do not take minutes)
step switches 150 $PY benchmarks/bench.py $EPOCH --epoch-switches --epoch-modes pcdarts,racl_fast_batched \
    --variant baseline,channels_last,bf16,auto --device "$DEVICE" --json "$OUT/bench-$gpu-$stamp-switches.json"
# 4. #12: the paper's retraining step and the search's pieces; #13: ResNet-18 and Table 4's
#    ResNet-110 source beside it (the dry run's cost of Table 4)
step train 120 $PY benchmarks/bench.py --part train,search --profile paper --dataset cifar10-mini --batch 64 \
    --train-batch 128 --cells 20 --channels 36 --pgd-steps 10 --human-archs resnet18,resnet110 --variant all \
    --device "$DEVICE" --json "$OUT/bench-$gpu-$stamp-train.json"
# 5. #12: the retraining step under torch.compile, with the auto switches, its compile time
#    apart, against the same step eager
step compile 240 $PY benchmarks/bench.py --part train --variant auto --compile reduce-overhead --train-batch 128 \
    --cells 20 --channels 36 --pgd-steps 10 --device "$DEVICE" --json "$OUT/bench-$gpu-$stamp-compile.json"
# 6. #12: does bf16 change the searched cell? (the exact search twice: a call of its own)
step bf16search 560 $PY benchmarks/bf16_check.py --device "$DEVICE" --part search \
    --search-set depthwise_backward=explicit --search-set batchnorm_backward=explicit --out "$OUT/bf16search-$gpu-$stamp.json"
ls -la "$OUT" | tee -a "$LOG"
