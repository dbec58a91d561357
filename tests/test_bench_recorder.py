"""`sleepcore bench recorder`: the visit count is complete and the overhead is computed from what was measured."""

import torch

from sleepcore.bench_recorder import COLUMNS, CountingNull, recorder_bench, visit_ns
from sleepcore.model import SleepModel
from sleepcore.presets import build
from sleepcore.recorder import Recorder
from sleepcore.tasks import get_task


class CountingRecorder(Recorder):
    """A recorder that keeps everything and counts its `enabled` reads like CountingNull does."""

    def __init__(self):
        super().__init__()
        self.visits = 0

    @property
    def enabled(self):
        self.visits += 1
        return True


def test_the_counting_null_sees_every_record_point_a_recorder_sees():
    model_cfg, sleep_cfg, task_cfg, _ = build("tiny", passes=3)
    task = get_task(task_cfg.name, **task_cfg.params)
    model = SleepModel(model_cfg, sleep_cfg).eval()
    from sleepcore.data import collate

    batch = collate(task.sample(2, seed=0, split="test"))
    null, full = CountingNull(), CountingRecorder()
    with torch.no_grad():
        a = model(batch["tokens"], batch["loss_mask"], rec=null).logits
        b = model(batch["tokens"], batch["loss_mask"], rec=full).logits
    torch.testing.assert_close(a, b)  # recording swaps SDPA for explicit softmax attention: rounding only
    assert null.visits == full.visits > 0
    assert null.visits >= len({n.rsplit("/fw.", 1)[0] for n in full.store})  # fw points share one visit per layer


def test_quick_bench_rows_hold_what_they_claim():
    rows = recorder_bench(presets=("tiny",), passes=(1, 2), steps=1, batch_size=2, progress=False)
    assert [(r["preset"], r["passes"]) for r in rows] == [("tiny", 1), ("tiny", 2)]
    for r in rows:
        assert list(r) == COLUMNS
        expected = 100 * r["visits_per_step"] * r["visit_ns"] * 1e-6 / r["step_ms"]
        assert abs(r["null_overhead_pct"] - expected) <= 1e-4 + 1e-3 * expected
    assert rows[1]["visits_per_step"] > rows[0]["visits_per_step"]  # a second sleep pass visits more points


def test_a_visit_costs_well_under_a_microsecond_on_any_machine():
    assert 0.0 <= visit_ns(repeats=20_000) < 20_000
