#!/usr/bin/env bash
# A campaign (`python -m racl reproduce`) on a GPU lent for a few minutes (the device tool: one
# call of at most 10 minutes; 15 minutes of device time a session), turning out whole records
# and bringing back what the call wrote, resumable. Here, once:
#
#   make device-packages                                     # .whl/ (ignored): torchattacks, pyautoattack
#   cp ../shared/data/cifar10-mini.npz data/mini/            # training calls: the whole dataset (18 MB)
#   python benchmarks/device_campaign.py testdata cifar10-mini   # evaluation calls: data/device/, test images (3 MB)
#
#   python benchmarks/device_campaign.py size --carry .whl --carry data/mini/cifar10-mini.npz
#                                  # what the call would send, against its 64 MiB (and what to move out)
#
# then, with timeout_s 600 and carry [".whl", "data/mini/cifar10-mini.npz"] (training) or
# [".whl", "data/device"] plus the weights to evaluate (evaluation):
#
#   BUDGET=540 TARGETS=table7 KINDS=train EXTRA="--archs darts_v2 --seeds 0" bash benchmarks/device_campaign.sh
#   BUDGET=540 TARGETS=table7 KINDS=eval DATA=data/device bash benchmarks/device_campaign.sh
#
# The jobs run one after another (`reproduce --executor sequential`); `--time-budget` starts only
# those whose estimated time on this GPU (the dry run's, from the committed H200 records: a gpu
# retraining of the 20-cell C = 36 network is about 6.3 minutes) fits what is left, except the
# kinds MAY_STOP (searches and evaluations), which start anyway: the whole run is stopped
# RESERVE seconds before BUDGET, and a search's last checkpoint or an evaluation's finished
# attacks come back, so a gpu search (about 40 minutes) advances call by call. Then `device_campaign.py pack` writes what changed to $OUT:
# finished retrainings with their weights alone (about 14 MB), unfinished runs that fit a file,
# the evaluation records; back here, `python benchmarks/device_campaign.py unpack <files_at>`
# puts them under data/runs. Commit the records; a checkpoint over 5 MB stays uncommitted (the
# tree travels to the GPU too) until its evaluation is recorded.
# PROFILE=smoke DEVICE=cpu BUDGET=120 bash benchmarks/device_campaign.sh rehearses it on the CPU.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/racl-device-campaign}
mkdir -p "$OUT"
PROFILE=${PROFILE:-gpu}
TARGETS=${TARGETS:-table7}
KINDS=${KINDS:-train}
# kinds started whatever their estimate: what a stopped search or evaluation did comes back
# (a gpu search's checkpoint is about 5.5 MB; an evaluation's finished attacks, a few kB)
MAY_STOP=${MAY_STOP:-search,eval}
BUDGET=${BUDGET:-540}
RESERVE=${RESERVE:-45}
DEVICE=${DEVICE:-cuda}
EXTRA=${EXTRA:-}
RUNS=${RUNS:-data/runs}
. benchmarks/device_env.sh  # PYTHONPATH, the carried packages, PY
# DATA=folder: the datasets' .npz files from there first (data/device: the test images alone)
[ -n "${DATA:-}" ] && export RACL_DATA="$PWD/$DATA"
LOG="$OUT/campaign.log"
MARK=$(mktemp)
{ date -u; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null; } >>"$LOG" 2>&1
RUN=$(( BUDGET - RESERVE ))
if [ "$RUN" -lt 30 ]; then echo "BUDGET=$BUDGET leaves under 30 s beside RESERVE=$RESERVE" | tee -a "$LOG"; exit 2; fi
echo "== reproduce --profile $PROFILE --targets $TARGETS --kinds $KINDS (${RUN}s) $EXTRA" | tee -a "$LOG"
# shellcheck disable=SC2086  # EXTRA is a list of arguments
timeout --kill-after=10 "$RUN" $PY -m racl reproduce --profile "$PROFILE" --targets "$TARGETS" --kinds "$KINDS" \
    --time-budget "$RUN" --may-stop "$MAY_STOP" --device "$DEVICE" --runs "$RUNS" $EXTRA >>"$LOG" 2>&1
rc=$?
echo "== reproduce: exit $rc$([ $rc = 124 ] && echo ' (stopped at the budget: what it did is kept)')" | tee -a "$LOG"
$PY benchmarks/device_campaign.py pack --since "$MARK" --out "$OUT" --runs "$RUNS" 2>&1 | tee -a "$LOG"
rm -f "$MARK"
ls -la "$OUT" | tee -a "$LOG"
