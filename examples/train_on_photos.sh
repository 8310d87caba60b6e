#!/usr/bin/env bash
# Issue 21 part 2: learn from real photos without labels, then measure new vs shipped weights. One GPU call.
#
#   python examples/real_photos.py --out .photos --format jpg     # here, once (2.5 MB, ignored by git)
#   OUT=/tmp/out bash examples/train_on_photos.sh                 # on the GPU machine (~9 min wall)
#   TINY=1 OUT=/tmp/tiny bash examples/train_on_photos.sh         # CPU dry run at toy sizes (~10 min on 2 cores)
#
# Stages (budgets in seconds, each an environment variable):
#   0. in the background from the start: the shipped weights' evaluations (BASELINE=0 skips them)
#   1. tokenizer: the shipped tokenizer's DECODER fine-tuned (encoder frozen: the latent space the video model
#      and the 3DGS decoder were trained on stays bit-identical) on procedural clips + photo pseudo-videos
#      of the tune photos (TOK_S of training)
#   2. SDG with the new tokenizer: the tune photos x AUGMENT views, and as many fresh procedural training
#      worlds (seeds from 500,000, never used before), in parallel processes (SDG_S wall)
#   3. 3DGS decoder fine-tuned from the shipped one on both SDG folders, half the steps each (DEC_S of training)
#   4. the new weights (float16, as shipped) evaluated: held-out photos with keep_input on and off, 12 held-out
#      worlds through the pipeline and with `lyra3d eval decoder`; then the comparison table and verdict
#      (examples/photo_training_report.py) in $OUT/summary.json
# DEADLINE (570 s on the GPU) shortens the decoder's training and the evaluation's time limit if earlier stages ran
# long, so that the report is written inside a 10-minute call.
# Held-out photos are only ever read by stage 0 and 4 (evaluation); training reads the manifest's tune split.
# Logs: $OUT/logs/*.log; weights: $OUT/weights/{tokenizer,decoder}; evaluations: $OUT/eval/{new,shipped}/.
set -euo pipefail
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:?set OUT to the results folder}
PHOTOS=${PHOTOS:-.photos}
TINY=${TINY:-0}
BASELINE=${BASELINE:-1}
mkdir -p "$OUT/logs" "$OUT/weights" "$OUT/eval/new" "$OUT/eval/shipped"
WORK=${WORK:-$(mktemp -d)}
T0=$(date +%s)
say() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/logs/script.log"; }
L="python -m lyra3d"
SHIPPED=src/lyra3d/weights

if ls .whl/*.whl >/dev/null 2>&1; then pip install -q --no-deps .whl/*.whl >"$OUT/logs/pip.log" 2>&1 || true; fi
[ -f "$PHOTOS/manifest.json" ] || { echo "no $PHOTOS/manifest.json: run python examples/real_photos.py --out $PHOTOS --format jpg"; exit 2; }

if [ "$TINY" = 1 ]; then
  DEVICE=cpu; TOK_S=${TOK_S:-20}; SDG_S=${SDG_S:-240}; DEC_S=${DEC_S:-20}; EVAL_S=${EVAL_S:-900}; AUGMENT=${AUGMENT:-2}
  DEADLINE=${DEADLINE:-100000}
  SDG_PROCS=1; NWORLDS=2; EVAL_WORLDS=1; VAL=1
  # a toy photo folder: 2 tune photos for training, 1 held-out photo for the evaluation
  python - "$PHOTOS" "$WORK/photos" <<'EOF'
import json, shutil, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
m = json.loads((src / "manifest.json").read_text())
keep = [e for e in m["photos"] if e["split"] == "tune"][:2] + [e for e in m["photos"] if e["split"] == "heldout"][:1]
for e in keep:
    shutil.copy(src / e["file"], dst / e["file"])
(dst / "manifest.json").write_text(json.dumps({**m, "photos": keep}, indent=1))
EOF
  PHOTOS="$WORK/photos"
  TOK_ARGS="--width 64 --height 32 --frames 5 --batch-size 1 --num-worlds 2 --eval-worlds 1 --photo-val 1 --photo-eval-clips 2 --eval-every 1000 --save-every 1000"
  SDG_ARGS="--width 128 --height 64 --frames 5 --steps 1"
  DEC_ARGS="--render-frames 2"
  EVAL_FRAMES="--frames 5"
else
  DEVICE=cuda; TOK_S=${TOK_S:-95}; SDG_S=${SDG_S:-110}; DEC_S=${DEC_S:-150}; EVAL_S=${EVAL_S:-120}; AUGMENT=${AUGMENT:-4}
  DEADLINE=${DEADLINE:-570}   # seconds from the start by which everything (the report included) must be done
  SDG_PROCS=${SDG_PROCS:-3}; NWORLDS=${NWORLDS:-0}; EVAL_WORLDS=12; VAL=$AUGMENT
  TOK_ARGS="--crop 128 --batch-size 12 --num-worlds 200 --eval-worlds 8 --eval-every 400 --save-every 400"
  SDG_ARGS=""
  DEC_ARGS=""
  EVAL_FRAMES=""
fi
NTUNE=$(python -c "import json,sys; print(sum(e['split']=='tune' for e in json.load(open(sys.argv[1]))['photos']))" "$PHOTOS/manifest.json")
[ "$NWORLDS" -gt 0 ] || NWORLDS=$(( NTUNE * AUGMENT ))   # as many procedural samples as photo samples
say "device $DEVICE, tiny=$TINY, $NTUNE tune photos x $AUGMENT views, $NWORLDS worlds; budgets tok ${TOK_S}s sdg ${SDG_S}s dec ${DEC_S}s"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$OUT/logs/script.log"

EVAL_PIDS=()
unless_done() {  # unless_done RESULT LOG CMD...: run CMD in the background (time-limited) unless RESULT exists
  local result=$1 log=$2; shift 2
  [ -e "$result" ] && return 0   # written by an earlier run into this OUT
  timeout "$EVAL_S" "$@" > "$log" 2>&1 & EVAL_PIDS+=($!)
}
evaluate() {  # evaluate WEIGHTS SIDE: held-out photos (keep_input on, off), 12 worlds (pipeline; eval decoder), in parallel
  local weights=$1 side=$2 dir="$OUT/eval/$2" w=() d=()
  if [ -n "$weights" ]; then w=(--weights "$weights"); d=(--tokenizer "$weights/tokenizer" --decoder "$weights/decoder"); fi
  EVAL_PIDS=()
  for mode in on off; do
    unless_done "$dir/photos_$mode/photos.json" "$OUT/logs/eval_${side}_photos_$mode.log" python examples/photo_eval.py \
      --photos "$PHOTOS" --split heldout --keep-input $mode --out "$dir/photos_$mode" "${w[@]}" --device "$DEVICE" --threads 2
  done
  unless_done "$dir/worlds.json" "$OUT/logs/eval_${side}_worlds.log" python examples/photo_eval.py \
    --worlds "$EVAL_WORLDS" --json "$dir/worlds.json" "${w[@]}" --device "$DEVICE" --threads 2
  unless_done "$dir/decoder.json" "$OUT/logs/eval_${side}_decoder.log" $L eval decoder --worlds "$EVAL_WORLDS" \
    $EVAL_FRAMES "${d[@]}" --device "$DEVICE" --json "$dir/decoder.json"
  for p in "${EVAL_PIDS[@]}"; do wait "$p" || echo "an evaluation of $side failed or ran out of time" >> "$OUT/logs/script.log"; done
}

# -- 0. the shipped weights' evaluations, beside the training ------------------------------------------------------
if [ "$BASELINE" = 1 ]; then
  if [ "$TINY" = 1 ]; then evaluate "" shipped; say "baseline evaluated"; else evaluate "" shipped & BASE_PID=$!; fi
fi

# -- 1. tokenizer: the decoder only, on procedural clips + photo pseudo-videos ----------------------------------------
say "tokenizer fine-tune"
$L train tokenizer --out "$WORK/tok" --init-from "$SHIPPED/tokenizer" --freeze-encoder --photos "$PHOTOS" \
  --photo-fraction 0.5 --lr 2e-4 --warmup 50 --steps 100000 --train-time-s "$TOK_S" --time-limit-s $(( TOK_S + 60 )) \
  --device "$DEVICE" $TOK_ARGS > "$OUT/logs/tokenizer.log" 2>&1
grep '"eval"' "$OUT/logs/tokenizer.log" | tail -1 | tee -a "$OUT/logs/script.log" || true

half() {  # half SRC DST: float16 weights as shipped (config.json and logs copied)
  python - "$1" "$2" <<'EOF'
import shutil, sys
from pathlib import Path
from safetensors import safe_open
from safetensors.torch import save_file
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
with safe_open(str(src / "model.safetensors"), "pt") as f:
    meta = f.metadata()
    tensors = {k: (f.get_tensor(k).half() if f.get_tensor(k).is_floating_point() else f.get_tensor(k)).contiguous()
               for k in f.keys()}
save_file(tensors, str(dst / "model.safetensors"), metadata=meta)
(dst / "model.safetensors").chmod(0o644)  # safetensors writes 0600; the shipped files are 0644
shutil.copy(src / "config.json", dst / "config.json")
for log in src.parent.glob("train_log*.jsonl"):
    shutil.copy(log, dst / log.name)
EOF
}
half "$WORK/tok/model" "$OUT/weights/tokenizer"
python - "$SHIPPED/tokenizer" "$OUT/weights/tokenizer" <<'EOF' | tee -a "$OUT/logs/script.log"
import sys
from safetensors.torch import load_file
a, b = (load_file(f"{d}/model.safetensors") for d in sys.argv[1:3])
enc = [k for k in a if k.split(".")[0] in ("enc", "enc_first", "enc_group")]
print(f"tokenizer encoder tensors bit-identical to the shipped ones: {all(a[k].equal(b[k]) for k in enc)} ({len(enc)}); "
      f"decoder tensors changed: {sum(not a[k].equal(b[k]) for k in a if k not in enc)} of {len(a) - len(enc)}")
EOF

# -- 2. SDG with the new tokenizer: photos (augmented) and fresh procedural worlds ---------------------------------------
say "SDG: photos and worlds, $SDG_PROCS processes each"
pids=()
for i in $(seq 0 $(( SDG_PROCS - 1 ))); do
  timeout "$SDG_S" $L sdg --out "$WORK/sdg_photos" --images "$PHOTOS" --split tune --augment "$AUGMENT" \
    --tokenizer "$OUT/weights/tokenizer" --shard "$i" --num-shards "$SDG_PROCS" --threads 2 --device "$DEVICE" -q $SDG_ARGS \
    > "$OUT/logs/sdg_photos_$i.log" 2>&1 & pids+=($!)
  timeout "$SDG_S" $L sdg --out "$WORK/sdg_worlds" --worlds "$NWORLDS" --first-seed 500000 \
    --tokenizer "$OUT/weights/tokenizer" --shard "$i" --num-shards "$SDG_PROCS" --threads 2 --device "$DEVICE" -q $SDG_ARGS \
    > "$OUT/logs/sdg_worlds_$i.log" 2>&1 & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done   # a shard stopped by its time limit keeps its finished samples
NP=$(ls -d "$WORK"/sdg_photos/*/ 2>/dev/null | wc -l); NW=$(ls -d "$WORK"/sdg_worlds/*/ 2>/dev/null | wc -l)
say "SDG samples: photos $NP, worlds $NW"

# -- 3. the 3DGS decoder from the shipped one, on worlds and photos alike ------------------------------------------------
LEFT=$(( DEADLINE - ($(date +%s) - T0) - EVAL_S - 60 ))   # what is left before the evaluation must start
if [ "$LEFT" -lt "$DEC_S" ]; then DEC_S=$(( LEFT > 30 ? LEFT : 30 )); fi
say "decoder fine-tune (${DEC_S}s)"
$L train decoder --out "$WORK/dec" --init-from "$SHIPPED/decoder" --data "$WORK/sdg_worlds,$WORK/sdg_photos" \
  --data-weights 1,1 --val-samples "$VAL" --warmup 50 --few-views-until 0 --lr 1e-4 --steps 100000 \
  --train-time-s "$DEC_S" --time-limit-s $(( DEC_S + 40 )) --eval-every 500 --save-every 500 --device "$DEVICE" $DEC_ARGS \
  > "$OUT/logs/decoder.log" 2>&1
grep '"eval"' "$OUT/logs/decoder.log" | tail -1 | tee -a "$OUT/logs/script.log" || true
grep '"s_per_step"' "$OUT/logs/decoder.log" | tail -1 | tee -a "$OUT/logs/script.log" || true
half "$WORK/dec/model" "$OUT/weights/decoder"

# -- 4. the new weights, evaluated; the comparison --------------------------------------------------------------------
LEFT=$(( DEADLINE - ($(date +%s) - T0) - 20 ))
if [ "$LEFT" -lt "$EVAL_S" ]; then EVAL_S=$(( LEFT > 30 ? LEFT : 30 )); fi
say "evaluating the new weights (at most ${EVAL_S}s)"
evaluate "$OUT/weights" new
if [ -n "${BASE_PID:-}" ]; then wait "$BASE_PID" || true; fi
say "report"
python examples/photo_training_report.py --eval "$OUT/eval" --photos "$PHOTOS" --new "$OUT/weights" \
  --json "$OUT/summary.json" | tee "$OUT/summary.md"
say "done"
