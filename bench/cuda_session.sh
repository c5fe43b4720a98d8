#!/usr/bin/env bash
# Everything this project measures on a lent CUDA GPU, in one call (the lease is short):
#
#   OUT=runs/cuda bash bench/cuda_session.sh [SWEEP_SECONDS]
#
# 1. the environment; 2. the built-in dataset (16 workers); 3. aimed sparse-training schedules in
# parallel, each pruned to 30% of the BFLOPs and fine-tuned (train.py + bench/prune_tradeoff.py,
# and compress.py without its QAT/export/latency stages), all stopped at SWEEP_SECONDS; 4. the
# training-step and inference-latency benches on CUDA. Small results (CSV, JSON, logs) go into
# $OUT/results.tgz; a summary is printed last. TINY=1 rehearses it on a CPU in a few minutes.
# Measured on an H100 (2026-11-27): with six trainings sharing it, an epoch took 16-24 s (the
# loop, not the GPU, bounds it), so in 360 s the 30-epoch runs reached epoch 19; they were
# finished with train.py --resume in a second call.
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

aimed() {  # name epochs fade [train.py flags]: aimed sparse training, then slim at 30% BFLOPs and
  # 3 fine-tune epochs
  python3 train.py --weights weights/yolov3-mini.pt --data $DATA -sr --s 0.005 --prune 1 \
    --sr-target 0.3 --sr-fade "$3" --epochs "$(E "$2")" --device $DEV --workers 2 \
    --project $WORK --name "$1" --exist-ok "${@:4}" &&
  python3 bench/prune_tradeoff.py --sparse $WORK/"$1"/weights/last.pt --data $DATA \
    --only target --rank layer --ft-epochs "$(E 3)" --latency-runs 3 --project $WORK/"$1"-prune
}
pipeline() {  # name sparse-epochs finetune-epochs fade: compress.py up to the fine-tune
  python3 compress.py --device $DEV --data $DATA --project $WORK --name "$1" \
    --epochs-sparse "$(E "$2")" --epochs-finetune "$(E "$3")" --sr-fade "$4" \
    --latency-runs 3 --skip qat export latency
}

stamp "sweep (stops after $SWEEP s)"
export OMP_NUM_THREADS=2  # six trainings share 16 cores; their tensors live on the GPU
aimed a20 20 0.667 > $WORK/a20.log 2>&1 &
aimed a30 30 0.667 --notest > $WORK/a30.log 2>&1 &
aimed a30f5 30 0.5 --notest > $WORK/a30f5.log 2>&1 &
pipeline c10 10 2 0.667 > $WORK/c10.log 2>&1 &
pipeline c12 12 3 0.667 > $WORK/c12.log 2>&1 &
pipeline c12f3 12 3 0.333 > $WORK/c12f3.log 2>&1 &
( sleep "$SWEEP"; pkill -f 'train.py|prune_tradeoff.py|compress.py' ) & watchdog=$!
wait $(jobs -p | grep -v "^$watchdog$") 2>/dev/null
kill $watchdog 2>/dev/null
unset OMP_NUM_THREADS
stamp sweep done

stamp benches
timeout 90 python3 bench/train_speed.py --cfg cfg/yolov3-mini.cfg cfg/yolov3-tiny.cfg \
  cfg/yolov3.cfg --img-size 416 --batch-size 32 --device $DEV --json $WORK/train_speed.json \
  > $WORK/train_speed.log 2>&1
timeout 60 python3 bench/latency.py --weights weights/yolov3-mini.pt --device $DEV \
  --batch 1 32 --runs 50 --out $WORK/latency.json > $WORK/latency.log 2>&1

stamp summary
for f in $WORK/*/results.csv $WORK/*/*/results.csv; do
  [ -f "$f" ] || continue
  echo "== $f"; cut -d, -f1,5,9,10 "$f" | tail -1
  awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i} NR > 1 && c["map50"] {
    printf "%s:%s ", $1, $c["map50"]} END {print ""}' "$f"
done
for f in $WORK/*-prune/exp/prune_tradeoff.json; do
  [ -f "$f" ] && python3 -c "import json,sys; r=json.load(open(sys.argv[1]))
print(sys.argv[1], 'dense', r['baseline']['map50'], 'sparse', r['sparse']['map50'],
      [(x['setting'], x['bflops_ratio'], x['map50_pruned'], x['map50_ft']) for x in r['rows']])" "$f"
done
for f in $WORK/*/report.md; do [ -f "$f" ] && echo "== $f" && grep '^|' "$f"; done
tail -n 14 $WORK/train_speed.log $WORK/latency.log
tar czf "$OUT/results.tgz" --exclude='*.pt' --exclude='*.weights' --exclude='*.onnx' \
  --exclude='*.png' --exclude='*.jpg' --exclude='tiny' $WORK 2>/dev/null
ls -la "$OUT"
