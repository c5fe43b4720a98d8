#!/usr/bin/env bash
# Everything this project measures on a lent CUDA GPU, in one call (the lease is short):
#
#   OUT=runs/cuda bash bench/speed/cuda_session.sh [SWEEP_SECONDS]
#
# 1. the environment; 2. the built-in dataset (16 workers); 3. compress.py schedules in parallel
# (all stages but latency), stopped at SWEEP_SECONDS; 4. unless BENCH=0, the training-step and
# inference-latency benches on CUDA. Small results (CSV, JSON, logs) go into $OUT/results.tgz; a
# summary is printed last. TINY=1 rehearses it on a CPU in a few minutes.
# Measured on an H100 (2026-11-27): with six trainings sharing it, an epoch took 16-24 s (the
# loop, not the GPU, bounds it). The sweep of aimed schedules for issue 5 that ran here then is
# in git history (bench/speed/cuda_session.sh at 8b57585). Four compress.py runs sharing it took 11-17 s
# per epoch: 20 + 3 epochs with QAT and export in 400 s; the 16 + 3 / 12 + 6 sweep below did not
# finish its fine-tunes in 275 s (README, Quick start, has what did finish).
set -u
OUT=${OUT:-runs/cuda}
SWEEP=${1:-360}
WORK=runs/cuda
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
DEV=0; DATA=data/shapes.data; E() { echo "$1"; }
if [ "${TINY:-0}" = 1 ]; then  # rehearsal: a 32-image dataset, one epoch per stage
  DEV=cpu; DATA=$WORK/tiny.data; E() { echo 1; }
  python3 data/make_shapes.py --out $WORK/tiny --n-train 32 --n-val 8 --workers 2 > /dev/null
  printf 'classes=6\ntrain=tiny/train.txt\nvalid=tiny/val.txt\nnames=%s\n' \
    "$PWD/data/shapes.names" > $DATA
fi
stamp() { echo "[$(date +%T)] $*"; }

stamp environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tail -2
python3 - <<'EOF'
import cv2, onnxruntime, torch
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__,
      'onnxruntime', onnxruntime.__version__)
EOF

stamp dataset
[ "${TINY:-0}" = 1 ] || python3 data/make_shapes.py --workers 16 | tail -1
python3 - "$DATA" <<'EOF'  # write the label caches once, before parallel readers
import sys
from utils.datasets import load_items, parse_data_cfg
d = parse_data_cfg(sys.argv[1])
for k in ('train', 'valid'):
    load_items(d[k], int(d['classes']))
EOF

pipeline() {  # name sparse-epochs finetune-epochs [compress.py flags]: the whole pipeline but
  # the latency stage (onnxruntime runs on the CPU there; its CPU latency is measured here)
  timeout -s INT "$SWEEP" python3 compress.py --device $DEV --data $DATA --project $WORK --name "$1" \
    --epochs-sparse "$(E "$2")" --epochs-finetune "$(E "$3")" --skip ${SKIP:-latency} "${@:4}"
}

stamp "sweep (stops after $SWEEP s)"
# Which schedule of compress.py reaches 2 points within 20 CPU minutes: the fine-tune at the
# sparse stage's learning rate (1e-3, not 1e-4), and epochs moved from the sparse stage (the whole
# network) to the fine-tune (the pruned one, half the cost on a CPU without distillation).
sed 's/^lr0: .*/lr0: 0.001/; s/^warmup_bias_lr: .*/warmup_bias_lr: 0.001/' data/hyp.finetune.yaml \
  > $WORK/hyp.hi.yaml
export OMP_NUM_THREADS=2  # four trainings share 16 cores; their tensors live on the GPU
pipeline a16 16 3 > $WORK/a16.log 2>&1 &
pipeline b16hi 16 3 --hyp-finetune $WORK/hyp.hi.yaml > $WORK/b16hi.log 2>&1 &
pipeline c12hi6 12 6 --sr-fade 1 --hyp-finetune $WORK/hyp.hi.yaml --KDstr 0 > $WORK/c12hi6.log 2>&1 &
pipeline d12hi6kd 12 6 --sr-fade 1 --hyp-finetune $WORK/hyp.hi.yaml > $WORK/d12hi6kd.log 2>&1 &
wait
unset OMP_NUM_THREADS
stamp sweep done

[ "${BENCH:-1}" = 1 ] || { SKIP_BENCH=1; }
if [ -z "${SKIP_BENCH:-}" ]; then
stamp benches
timeout 90 python3 bench/speed/train_speed.py --cfg cfg/yolov3-mini.cfg cfg/yolov3-tiny.cfg \
  cfg/yolov3.cfg --img-size 416 --batch-size 32 --device $DEV --json $WORK/train_speed.json \
  > $WORK/train_speed.log 2>&1
timeout 60 python3 bench/speed/latency.py --weights weights/yolov3-mini.pt --device $DEV \
  --batch 1 32 --runs 50 --out $WORK/latency.json > $WORK/latency.log 2>&1
fi

stamp summary
for f in $WORK/*/results.csv $WORK/*/*/results.csv; do
  [ -f "$f" ] || continue
  echo "== $f"; cut -d, -f1,5,9,10 "$f" | tail -1
  awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i} NR > 1 && c["map50"] {
    printf "%s:%s ", $1, $c["map50"]} END {print ""}' "$f"
done
for f in $WORK/*/report.md; do [ -f "$f" ] && echo "== $f" && grep '^|' "$f"; done
tail -n 14 $WORK/train_speed.log $WORK/latency.log 2>/dev/null
tar czf "$OUT/results.tgz" --exclude='*.pt' --exclude='*.weights' --exclude='*.onnx' \
  --exclude='*.png' --exclude='*.jpg' --exclude='tiny' $WORK 2>/dev/null
ls -la "$OUT"
