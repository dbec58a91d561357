"""checkpoints/RESULTS.md: one section per preset, baselines explained, no table printed twice."""

import sleepcore.results as results


def cell(acc: float) -> dict:
    return {"acc": acc, "lo": acc - 0.01, "hi": acc + 0.01, "correct": int(acc * 100), "n": 100}


def fake(name, preset, task, variant, passes, answers, effective=None, first=None):
    res = {
        "checkpoint": name,
        "passes": passes,
        "trained_passes": passes,
        "variant": variant,
        "task": task,
        "preset": preset,
        "chance": {d: 0.1 for d in answers},
        "answers": {d: cell(a) for d, a in answers.items()},
        "exact": {},
    }
    if effective is not None:
        res["effective"] = {d: cell(a) for d, a in effective.items()}
        res["effective_name"] = "hops k mod n"
    if first is not None:
        res["first"], res["first_about"] = {d: cell(a) for d, a in first.items()}, "the first query of each sequence"
    return res


RUNS = {
    # depo-k4's k cannot wrap, so evaluation gives it no effective depth (Depo.effective_depth_name is None)
    "depo-k4-n1": fake("depo-k4-n1", "depo-k4", "depo", "hybrid", 1, {"1": 0.9, "4": 0.2}, first={"1": 1, "4": 0.1}),
    "depo-k4-n4": fake("depo-k4-n4", "depo-k4", "depo", "hybrid", 4, {"1": 0.8, "4": 0.7}, first={"1": 1, "4": 0.6}),
    "depo-mini-n1": fake("depo-mini-n1", "depo-mini", "depo", "hybrid", 1, {"1": 0.9, "8": 0.6}, {"0": 1, "1": 0.9}),
    "depo-k4-n4-s1": {
        **fake("depo-k4-n4-s1", "depo-k4", "depo", "hybrid", 4, {"1": 0.7, "4": 0.6}, first={"1": 1, "4": 0.5}),
        "train_seed": 1,
        "data_seed": 4321,
    },
    "r-wide": fake("r-wide", "rule110-mini", "rule110", "wide", 1, {"1": 0.95}),
    "r-n4": fake("r-n4", "rule110-mini", "rule110", "hybrid", 4, {"1": 0.97}),
}


def test_results_are_grouped_by_preset_with_hybrids_first(monkeypatch):
    monkeypatch.setattr(results, "available", lambda: list(RUNS))
    monkeypatch.setattr(results, "evaluate_checkpoint", lambda name, **kw: RUNS[name])
    text = results.results_markdown(per_depth=100, seed=1)
    assert "`sleepcore eval --all --examples 100 --seed 1 --markdown checkpoints/RESULTS.md`" in text
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## depo-k4 (depo): accuracy per answer",
        "## depo-k4 (depo): the first answer of each sequence alone",
        "## depo-mini (depo): accuracy per answer",
        "## depo-mini (depo): accuracy per answer by hops k mod n",
        "## rule110-mini (rule110): accuracy per answer",
    ]
    k4 = text.split("## depo-k4 (depo): accuracy per answer")[1].split("##")[0]
    assert "| checkpoint | variant | N | depth 1 | depth 4 |" in k4 and "depth 8" not in k4
    assert "| depo-k4-n4 | hybrid | 4 | 0.800 [0.79, 0.81] | 0.700 [0.69, 0.71] |" in k4
    first = text.split("## depo-k4 (depo): the first answer of each sequence alone")[1].split("##")[0]
    assert "Only the first query of each sequence." in first
    assert "| depo-k4-n1 | hybrid | 1 | 1.000 [0.99, 1.01] | 0.100 [0.09, 0.11] |" in first
    assert "another initialisation and data seed" in text and "depo-k4-n4-s1 (seed 1, data seed 4321)." in text
    assert k4.index("| depo-k4-n4 |") < k4.index("| depo-k4-n4-s1 |")
    r110 = text.split("## rule110-mini (rule110)")[1]
    assert r110.index("| r-n4 | hybrid |") < r110.index("| r-wide | wide |")  # the sleep models, then baselines
    assert "capacity control" in text and "Not shipped yet: the attn-only, full-attention baseline(s)" in text
