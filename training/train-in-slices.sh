#!/bin/bash
# Continue a bundled-model training in 20-minute slices, in the background of a session:
#   (setsid nohup bash training/train-in-slices.sh [WORK [RESUME_POINT [RECIPE]]] > /dev/null 2>&1 &)
# Defaults: runs/emoji-sd, training/emoji-sd and the shipped recipe (default_config()).
# Each slice checkpoints and exits with code 3; between slices the thread count is re-read
# from WORK/threads (write 1 there to free a core for tests, 2 to train alone).
# Stop it with: pkill -f train-in-slices.sh; pkill -f "fissure zoo train"
set -u
cd "$(dirname "$0")/.."
work=${1:-runs/emoji-sd}
point=${2:-training/emoji-sd}
recipe=()
[ -n "${3:-}" ] && recipe=(--recipe "$3")
mkdir -p "$work"
[ -f "$work/threads" ] || echo 2 > "$work/threads"
while true; do
  threads=$(cat "$work/threads")
  # the resume point only seeds a fresh work folder; a work folder further on goes on from itself;
  # --force: a last gate below the bars still writes the pipeline (the evaluation decides)
  OMP_NUM_THREADS=$threads .venv/bin/fissure zoo train emoji-sd "${recipe[@]}" --out "$work" \
    --resume-point "$point" --no-install --force --threads "$threads" --max-minutes 20 \
    >> "$work/train.log" 2>&1
  code=$?
  echo "$(date -u '+%F %T') exit $code" >> "$work/slices.log"
  [ "$code" -eq 3 ] || break
done
