"""`sleepcore bench recorder`: what the record points cost a training step when nothing is recorded.

Recording off is the null recorder: every record point is a visit that tests `rec.enabled` (and has built the
point's name prefix). A model without record points cannot be run from the same code, so the benchmark measures
the pieces instead of subtracting two noisy step times:
  1. the number of record-point visits in one training step (forward, and the recomputation of checkpointed passes
     in the backward), counted by a null recorder that counts its `enabled` reads;
  2. the cost of one visit (an f-string name and an `enabled` test, the most a visit does), timed in a tight loop;
  3. the median time of the training step itself.
visits × cost / step is then an upper bound on the null recorder's share of a step. For scale it also times the
step with a full recorder on (every point kept), which is what a trace costs.
"""

from __future__ import annotations

import statistics
import time
import timeit

import torch

import sleepcore.model as model_module
from sleepcore.data import collate
from sleepcore.model import SleepModel
from sleepcore.presets import build
from sleepcore.recorder import NULL, Recorder, _NullRecorder
from sleepcore.tasks import get_task
from sleepcore.train import batch_at, loss_and_accuracy, make_optimizer

COLUMNS = [
    "preset",
    "passes",
    "step_ms",
    "visits_per_step",
    "visit_ns",
    "null_overhead_pct",
    "recording_step_ms",
    "recording_overhead_pct",
]


class CountingNull(_NullRecorder):
    """A null recorder (records nothing, `enabled` is False) that counts how often a record point asks."""

    def __init__(self) -> None:
        self.visits = 0

    @property
    def enabled(self) -> bool:  # type: ignore[override]
        self.visits += 1
        return False


def visit_ns(repeats: int = 200_000) -> float:
    """ns for one record-point visit with the null recorder: build a name, test `enabled` (never taken)."""
    rec, w, p, i = NULL, 3, 2, 1

    def visit():
        name = f"window.{w}/pass.{p}/layer.{i}"
        if rec.enabled:
            rec.record(name, None)

    best = min(timeit.repeat(visit, number=repeats, repeat=5))
    empty = min(timeit.repeat(lambda: None, number=repeats, repeat=5))  # the loop and call around it
    return max(best - empty, 0.0) / repeats * 1e9


def recorder_row(preset: str, passes: int, steps: int = 5, batch_size: int | None = None) -> dict:
    model_cfg, sleep_cfg, task_cfg, cfg = build(preset, passes, batch_size=batch_size)
    task = get_task(task_cfg.name, **task_cfg.params)
    torch.manual_seed(cfg.seed)
    model = SleepModel(model_cfg, sleep_cfg).train()
    opt = make_optimizer(model, cfg)
    batch = collate(batch_at(cfg.steps // 2, cfg, task))

    def step(rec) -> float:
        t0 = time.perf_counter()
        loss, _ = loss_and_accuracy(model, batch, rec)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return 1e3 * (time.perf_counter() - t0)

    counter = CountingNull()
    # Checkpointed passes run again in the backward with the module-level NULL: count those visits too.
    saved, model_module.NULL = model_module.NULL, counter
    try:
        step(counter)  # warm-up, and the count of one step
    finally:
        model_module.NULL = saved
    visits = counter.visits
    null_ms, rec_ms = [], []
    for _ in range(steps):  # interleaved, so drift in the machine's load hits both alike
        null_ms.append(step(NULL))
        rec_ms.append(step(Recorder()))
    ns = visit_ns()
    step_ms, recording_ms = statistics.median(null_ms), statistics.median(rec_ms)
    return {
        "preset": preset,
        "passes": passes,
        "step_ms": round(step_ms, 2),
        "visits_per_step": visits,
        "visit_ns": round(ns, 1),
        "null_overhead_pct": round(100 * visits * ns * 1e-6 / step_ms, 4),
        "recording_step_ms": round(recording_ms, 2),
        "recording_overhead_pct": round(100 * (recording_ms / step_ms - 1), 1),
    }


def recorder_bench(
    presets: tuple[str, ...] = ("rule110-mini", "depo-mini"),
    passes: tuple[int, ...] = (1, 4),
    steps: int = 5,
    batch_size: int | None = None,
    progress: bool = True,
) -> list[dict]:
    rows = []
    for preset in presets:
        for n in passes:
            rows.append(recorder_row(preset, n, steps, batch_size))
            if progress:
                r = rows[-1]
                print(
                    f"  {preset} N={n}: {r['visits_per_step']} visits, {r['null_overhead_pct']}% of a step", flush=True
                )
    return rows


def quick_settings() -> dict:
    return dict(presets=("tiny",), passes=(1, 2), steps=1, batch_size=4)
