#!/usr/bin/env bash
# Issue 4's GPU checks in one call of the lent device machine (../.library/device): the Triton tests compiled for
# real (fp32 against naive, bf16 within relative RMS 5e-3, strong decay, T = 2048), a tiny model trained a few
# steps with backend=auto, and `sleepcore bench ops` (B=8, H=8, T=512/2048/8192, K=V=64 and the shipped shapes)
# beside flash-linear-attention where its wheel was carried. Logs and CSVs go to $OUT; the last lines printed are
# a summary; at most 8 files come back (run.txt, tests.log, tests.xml, model.log, bench.log, ops.csv, and with
# the autotuned benchmark tuned.log and bench-tuned/ops.csv). Every stage has its own time limit, so one slow
# stage cannot eat the others' results, and the benchmark writes ops.csv after each shape, so a stage cut short
# keeps what it measured.
#
#   here, once (optional; .whl/ is ignored):  make device-wheels
#   through the device tool:                  run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=420)
#
# Compiling is most of a cold run's time: the tests and the model run with one fixed config per kernel
# (SLEEPCORE_TRITON_AUTOTUNE=0) and the tests in 8 processes (pytest-xdist, on the image); the benchmark runs
# fixed configs too, and, given seconds for it, again autotuned (bench-tuned/ops.csv).
# The machine runs its own python3 (torch and triton of its image); only safetensors, numpy and tqdm are needed
# beside them, and the image has all three (fla-core also needs einops, which the image has too). STAGE_S
# overrides the per-stage limits ("tests,model,bench,tuned" seconds; tuned 0 skips the autotuned benchmark);
# QUICK=1 runs the benchmark's smoke settings. A dry run on the CPU (interpreter, slow):
#   OUT=/tmp/dc PYTHON=.venv/bin/python STAGE_S=900,300,300,0 QUICK=1 bash scripts/device_check.sh
set -u
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
IFS=, read -r T_TESTS T_MODEL T_BENCH T_TUNED <<<"${STAGE_S:-180,60,150,0}"
T_TUNED=${T_TUNED:-0}

if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
    $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__,
        'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    $PY -c "import fla; print('fla', fla.__version__)" 2>/dev/null || echo "fla: not importable (make device-wheels)"
} >"$OUT/run.txt" 2>&1  # the device, then a line per stage: one file (the device tool brings back 8 at most)
cat "$OUT/run.txt"

stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, record the exit status
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc $((SECONDS - t0))s" >>"$OUT/run.txt"
}

PARALLEL=()
$PY -c "import xdist" 2>/dev/null && PARALLEL=(-n 8)
SLEEPCORE_TRITON_AUTOTUNE=0 stage tests "$T_TESTS" $PY -m pytest -q -ra -p no:cacheprovider "${PARALLEL[@]}" \
    tests/test_ops_triton.py tests/test_ops.py --junitxml="$OUT/tests.xml" --durations=15
SLEEPCORE_TRITON_AUTOTUNE=0 stage model "$T_MODEL" $PY - <<'PY'
import dataclasses, time, torch
from sleepcore.data import collate
from sleepcore.model import SleepModel
from sleepcore.presets import build
from sleepcore.tasks import get_task
from sleepcore.train import batch_at, loss_and_accuracy, make_optimizer

# depo-k4 at N = 4 with backend=auto (Triton on a GPU) and with chunk: same start, same batches, 20 steps.
device = "cuda" if torch.cuda.is_available() else "cpu"
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
losses = {}
for backend in ("auto", "chunk"):
    model_cfg, sleep_cfg, task_cfg, cfg = build("depo-k4", 4)
    task = get_task(task_cfg.name, **task_cfg.params)
    torch.manual_seed(0)
    model = SleepModel(dataclasses.replace(model_cfg, backend=backend), sleep_cfg).to(device).train()
    opt = make_optimizer(model, cfg)
    batches = [{k: v.to(device) for k, v in collate(batch_at(s, cfg, task)).items()} for s in range(20)]
    sync(); t0 = time.perf_counter()
    for b in batches:
        loss, _ = loss_and_accuracy(model, b)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        losses.setdefault(backend, []).append(loss.item())
    sync()
    print(f"{backend}: 20 steps in {time.perf_counter() - t0:.2f} s; loss {losses[backend][0]:.4f} -> {losses[backend][-1]:.4f}")
first = abs(losses["auto"][0] - losses["chunk"][0]) / losses["chunk"][0]
gap = max(abs(a - b) for a, b in zip(losses["auto"], losses["chunk"]))
print(f"{device}: first loss relative difference {first:.2e}; largest loss difference over 20 steps {gap:.2e}")
assert first < 1e-4 and gap < 1e-2, (first, gap)
PY
SLEEPCORE_TRITON_AUTOTUNE=0 stage bench "$T_BENCH" $PY -m sleepcore.cli bench ops --out "$OUT" ${QUICK:+--quick}
if [ "$T_TUNED" -gt 0 ]; then
    mkdir -p "$OUT/bench-tuned"
    stage tuned "$T_TUNED" $PY -m sleepcore.cli bench ops --out "$OUT/bench-tuned" ${QUICK:+--quick}
fi

echo "== stages (exit status, wall time)"; grep -E '^[a-z]+ rc=' "$OUT/run.txt"
echo "== tests"; tail -n 25 "$OUT/tests.log"
echo "== model"; tail -n 4 "$OUT/model.log"
echo "== bench ops (fixed configs)"; tail -n 60 "$OUT/bench.log"
if [ "$T_TUNED" -gt 0 ]; then  # an `&&` list here would make the script's status 1 whenever it is skipped
    echo "== bench ops (autotuned)"; tail -n 60 "$OUT/tuned.log"
fi
