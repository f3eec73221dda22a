#!/bin/bash
# Continue a bundled-model training in 20-minute slices, in the background of a session:
#   (setsid nohup bash training/train-in-slices.sh v2 > /dev/null 2>&1 &)
# Each slice checkpoints and exits with code 3; between slices the thread count is re-read
# from runs/emoji-sd-<run>/threads (write 1 there to free a core for tests, 2 to train alone).
# Stop it with: pkill -f train-in-slices.sh; pkill -f "fissure zoo train"
set -u
cd "$(dirname "$0")/.."
run=${1:-v2}
work=runs/emoji-sd-$run
recipe=training/emoji-sd-$run.json
mkdir -p "$work"
[ -f "$work/threads" ] || echo 2 > "$work/threads"
while true; do
  threads=$(cat "$work/threads")
  # the resume point only seeds a fresh work folder; a work folder further on goes on from itself;
  # --force: a last gate below the bars still writes the pipeline (the evaluation decides)
  OMP_NUM_THREADS=$threads .venv/bin/fissure zoo train emoji-sd --recipe "$recipe" --out "$work" \
    --resume-point "training/emoji-sd-$run" --no-install --force --threads "$threads" --max-minutes 20 \
    >> "$work/train.log" 2>&1
  code=$?
  echo "$(date -u '+%F %T') exit $code" >> "$work/slices.log"
  [ "$code" -eq 3 ] || break
done
