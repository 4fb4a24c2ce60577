#!/usr/bin/env bash
# Every GPU figure of benchmarks/RESULTS.md ("GPU scale") in one run: `make bench-gpu`.
#
#   benchmarks/gpu.sh [--cpu] [--out DIR] [--budget SECONDS]
#
# About 7-8 minutes on one H100/H200, offline. Phases, each under its own time budget and
# all under --budget (default 450 s, 1200 s with --cpu; a phase that would overrun is stopped, a phase with no
# time left is skipped, and both are recorded):
#   tests       pytest -m gpu (flash attention, fused Adam, compile on CUDA, bf16/fp16 training)
#   twins       the offline AudioSet and ESC-50 twins (smoke size; Speech Commands if
#               espeak-ng is installed)
#   fbank       `make bench`'s command: batched fbank on the GPU vs the per-clip loop
#   model       `make bench-model`'s command at batch 12 and --batches: ours vs transformers
#   train-*     one epoch of audioset_balanced with base384 in bf16, device and worker front
#               ends, on the AudioSet twin's balanced clips repeated to the medium twin's
#               3,000 per epoch (samples/s, MFU, peak memory, data wait)
#   loader      bench-loader: one worker's clips/s per recipe and front end
#   notebook-*  papermill over every notebook at base384 and the paper's 1024 frames (04 only
#               where espeak-ng can speak the Speech Commands twin)
#   model-compiled  bench-model with torch.compile at batch 12 (last: compiling is slow)
# No pretrained weights can be downloaded there: training runs with imagenet_pretrain=false,
# and the notebooks' base384 runs start from a random stand-in of the DeiT file. The
# figures are speeds; no accuracy of these runs means anything.
#
# Writes DIR (default results/bench/gpu): env.json, phases.jsonl, gpu-tests.xml, fbank.json,
# model.json, model-compiled.json, train-device.json, train-worker.json, loader.json,
# logs/<phase>.log and summary.md (`ast-repro gpu-report summary DIR`).
#
# Without internet, the packages the GPU machine's torch image lacks travel as wheels in
# .whl/ (benchmarks/gpu_wheels.sh fetches them on a machine with internet); they are
# installed into /tmp/site first. --cpu: the same phases with tiny sizes on the CPU (a dry
# run; tests/test_gpu_script.py runs it).
set -uo pipefail

MODE=gpu
OUT=results/bench/gpu
TOTAL=
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) MODE=cpu ;;
        --out) OUT=$2; shift ;;
        --budget) TOTAL=$2; shift ;;
        *) echo "gpu.sh: unknown option $1 (use --cpu, --out DIR, --budget SECONDS)" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/*.json "$OUT"/*.xml "$OUT"/phases.jsonl "$OUT"/summary.md "$OUT"/logs/*.log
WORK=${GPU_WORK:-$(mktemp -d)}
export AST_REPRO_DATA=$WORK/data AST_REPRO_RESULTS=$WORK/results
export AST_REPRO_PRETRAINED_DIR=$WORK/pretrained
export MPLBACKEND=Agg
AST="$PY -m ast_repro.cli"

# The phases' budgets are the GPU run's; a CPU dry run gets three times as long.
if [ "$MODE" = gpu ]; then
    SCALE=1 TOTAL=${TOTAL:-450}
    SIZE=base384 FRAMES=1024 TIMEM=192 BATCHES=32,64,128 STEPS=3 REPEATS=3
    EPOCH_CLIPS=3000 WORKERS=$(nproc) CACHE_WORKERS=4 LOADER_CLIPS=192
    FBANK_CLIPS=64 FBANK_REPEATS=15 NB_FRAMES=1024 TWINS="audioset esc50"
    NOTE="no pretrained weights can be downloaded on this machine: training runs with imagenet_pretrain=false and the notebooks' base384 runs start from a random stand-in of the DeiT file; the figures are speeds, not accuracies"
else
    SCALE=3 TOTAL=${TOTAL:-1200}
    SIZE=test FRAMES=128 TIMEM=48 BATCHES=4 STEPS=1 REPEATS=1
    EPOCH_CLIPS=48 WORKERS=1 CACHE_WORKERS=1 LOADER_CLIPS=16
    FBANK_CLIPS=4 FBANK_REPEATS=1 NB_FRAMES=256 TWINS="audioset"
    NOTE="CPU dry run with tiny sizes (the test model, the digits proxy for ImageNet weights): no figure here is a GPU figure"
fi
command -v espeak-ng > /dev/null && [ "$MODE" = gpu ] && TWINS="$TWINS speechcommands"
export MODE OUT WORK AST SIZE FRAMES TIMEM BATCHES STEPS REPEATS EPOCH_CLIPS WORKERS
export CACHE_WORKERS LOADER_CLIPS FBANK_CLIPS FBANK_REPEATS NB_FRAMES TWINS

START=$(date +%s)
# phase NAME BUDGET_S COMMAND...: run COMMAND under min(BUDGET_S, time left), log it, record it.
phase() {
    local name=$1 budget=$(($2 * SCALE))
    shift 2
    local left=$((TOTAL - ($(date +%s) - START)))
    local status seconds=0 rc
    if [ "$left" -lt 5 ]; then
        status="skipped: the run's ${TOTAL} s were spent"
    else
        [ "$budget" -gt "$left" ] && budget=$left
        echo "== $name (budget ${budget} s, ${left} s left)"
        local t0=$(date +%s%N)
        timeout -k 5 "$budget" "$@" > "$OUT/logs/$name.log" 2>&1
        rc=$?
        seconds=$(( ($(date +%s%N) - t0) / 1000000 ))
        seconds=$(printf '%d.%03d' $((seconds / 1000)) $((seconds % 1000)))
        case $rc in
            0) status=ok ;;
            124 | 137) status="stopped at its ${budget} s budget" ;;
            *) status="failed (exit $rc)" ;;
        esac
        tail -n 6 "$OUT/logs/$name.log"
    fi
    echo "-- $name: $status, $seconds s"
    printf '{"name": "%s", "budget_s": %s, "seconds": %s, "status": "%s"}\n' \
        "$name" "$budget" "$seconds" "$status" >> "$OUT/phases.jsonl"
}

step_twins() {
    for name in $TWINS; do
        $AST data "$name" --synthetic --size smoke --no-progress || return 1
    done
}

# step_train FRONTEND: one epoch of audioset_balanced, summarized to $OUT/train-FRONTEND.json
step_train() {
    local frontend=$1 cache=false workers=$WORKERS
    [ "$frontend" = device ] && cache=true workers=$CACHE_WORKERS
    local twin=$AST_REPRO_DATA/audioset-twin
    $AST gpu-report repeat "$twin/datafiles/balanced_train_data.json" \
        "$WORK/epoch_train.json" "$EPOCH_CLIPS" || return 1
    $AST train --recipe audioset_balanced --set epochs=1 --set data_root="$twin" \
        --set train_data="$WORK/epoch_train.json" --set imagenet_pretrain=false --set wa=false \
        --set model_size="$SIZE" --set target_length="$FRAMES" --set timem="$TIMEM" \
        --set frontend="$frontend" --set waveform_cache=$cache --set num_workers="$workers" \
        --set progress=false --set run_name="gpu-epoch-$frontend" || return 1
    $AST gpu-report epoch "$AST_REPRO_RESULTS/train/gpu-epoch-$frontend/metrics.json" \
        "$OUT/train-$frontend.json"
}

# step_notebook NUMBER -p NAME VALUE ...: one notebook through papermill
step_notebook() {
    $AST notebooks run "$@" --timeout 600
}
export -f step_twins step_train step_notebook

$AST gpu-report env "$OUT" "$MODE" "$NOTE" > /dev/null || exit 2
if [ "$MODE" = gpu ]; then
    nvidia-smi > "$OUT/logs/nvidia-smi.log" 2>&1
    # papermill starts notebooks on the `ast-repro` kernel (ast_repro.notebooks.KERNEL_NAME)
    "$PY" -m ipykernel install --user --name ast-repro --display-name "Python (ast-repro)" \
        > "$OUT/logs/kernel.log" 2>&1
fi

phase tests 75 "$PY" -m pytest tests -m gpu -q -p no:cacheprovider --junitxml="$OUT/gpu-tests.xml"
phase twins 75 bash -c step_twins
phase fbank 45 $AST bench --clips "$FBANK_CLIPS" --repeats "$FBANK_REPEATS" --out "$OUT/fbank.json"
phase model 120 $AST bench-model --size "$SIZE" --frames "$FRAMES" --batch 12 --batches "$BATCHES" \
    --steps "$STEPS" --repeats "$REPEATS" --out "$OUT/model.json"
phase train-device 75 bash -c "step_train device"
phase train-worker 75 bash -c "step_train worker"
phase loader 45 $AST bench-loader --clips "$LOADER_CLIPS" --out "$OUT/loader.json"
if [ "$MODE" = gpu ]; then
    phase standin 20 $AST gpu-report standin "$SIZE"
fi
NOTEBOOK=(bash -c 'step_notebook "$@"' notebook)
phase notebook-00 40 "${NOTEBOOK[@]}" 00 -p names "${TWINS// /,}"
phase notebook-01 40 "${NOTEBOOK[@]}" 01 -p dataset audioset -p target_length "$NB_FRAMES"
phase notebook-02 75 "${NOTEBOOK[@]}" 02 -p recipe smoke_audioset_balanced -p model_size "$SIZE" \
    -p variants scratch,imagenet -p feature_clips 4
phase notebook-03 90 "${NOTEBOOK[@]}" 03 -p model_size "$SIZE" -p target_length "$NB_FRAMES" \
    -p strides 16,10 -p shapes square16,square32 -p time_repeats 1
# 04 trains on the Speech Commands twin, which espeak-ng speaks (made above in the GPU run).
if [[ " $TWINS " == *" speechcommands "* ]]; then
    phase notebook-04 75 "${NOTEBOOK[@]}" 04 -p model_size "$SIZE" -p kinds none,all \
        -p epochs 1 -p lambda_draws 2000
fi
# 05 reuses 03's stride runs (same grid and config) and trains one more seed.
phase notebook-05 60 "${NOTEBOOK[@]}" 05 -p model_size "$SIZE" -p target_length "$NB_FRAMES" \
    -p ensemble_seeds 2 -p other_strides 16
phase notebook-99 30 "${NOTEBOOK[@]}" 99
if [ "$MODE" = gpu ]; then
    phase model-compiled 150 $AST bench-model --size "$SIZE" --frames "$FRAMES" --batch 12 \
        --batches "" --steps "$STEPS" --repeats "$REPEATS" --compile \
        --out "$OUT/model-compiled.json"
fi

$AST gpu-report summary "$OUT" > /dev/null
echo "== done in $(($(date +%s) - START)) s: $OUT/summary.md"
cat "$OUT/summary.md"
