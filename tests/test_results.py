"""checkpoints/RESULTS.md and RESULTS.json: one section per preset, baselines explained, no table printed twice;
the JSON round-trips and a malformed one is refused with a message."""

import json

import pytest

import sleepcore.results as results
from sleepcore.cli import main


def cell(acc: float) -> dict:
    return {"acc": acc, "lo": max(acc - 0.01, 0), "hi": min(acc + 0.01, 1), "correct": int(acc * 100), "n": 100}


def fake(name, preset, task, variant, passes, answers, effective=None, first=None):
    res = {
        "checkpoint": name,
        "weights_sha256": "0" * 64,
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
    "depo-k4-wake-loop-n4": fake(
        "depo-k4-wake-loop-n4", "depo-k4", "depo", "wake-loop", 4, {"1": 0.9, "4": 0.3}, first={"1": 1, "4": 0.2}
    ),
    "r-wide": fake("r-wide", "rule110-mini", "rule110", "wide", 1, {"1": 0.95}),
    "r-n4": fake("r-n4", "rule110-mini", "rule110", "hybrid", 4, {"1": 0.97}),
}


def test_results_are_grouped_by_preset_with_hybrids_first(monkeypatch):
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)  # the command then has no prefix
    monkeypatch.setattr(results, "require_checkpoints", lambda root: list(RUNS))
    monkeypatch.setattr(results, "evaluate_checkpoint", lambda path, label, **kw: RUNS[label])
    text = results.results_markdown(per_depth=100, seed=1)
    assert "Written by `sleepcore eval --all --examples 100 --seed 1`" in text
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## At a glance: every preset at its deepest depth",
        "## depo-k4 (depo): accuracy per answer",
        "## depo-k4 (depo): the first answer of each sequence alone",
        "## depo-mini (depo): accuracy per answer",
        "## depo-mini (depo): accuracy per answer by hops k mod n",
        "## rule110-mini (rule110): accuracy per answer",
    ]
    k4 = text.split("## depo-k4 (depo): accuracy per answer")[1].split("##")[0]
    assert "| checkpoint | variant | N | depth 1 | depth 4 |" in k4 and "depth 8" not in k4
    assert "| depo-k4-n4 | hybrid | 4 | 0.800 [0.790, 0.810] | 0.700 [0.690, 0.710] |" in k4
    first = text.split("## depo-k4 (depo): the first answer of each sequence alone")[1].split("##")[0]
    assert "Only the first query of each sequence." in first
    assert "| depo-k4-n1 | hybrid | 1 | 1.000 [0.990, 1.000] | 0.100 [0.090, 0.110] |" in first
    assert "another initialisation and data seed" in text and "depo-k4-n4-s1 (seed 1, data seed 4321)." in text
    assert (
        k4.index("| depo-k4-n4 |")
        < k4.index("| depo-k4-n4-s1 |")
        < k4.index("| depo-k4-wake-loop-n4 | wake-loop | 4 |")
    )
    assert "recurrence control" in text
    r110 = text.split("## rule110-mini (rule110)")[1]
    assert r110.index("| r-n4 | hybrid |") < r110.index("| r-wide | wide |")  # the sleep models, then baselines
    assert "capacity control" in text and "Not shipped yet: the attn-only, full-attention baseline(s)" in text
    glance = text.split("## At a glance: every preset at its deepest depth")[1].split("##")[0]
    assert glance.splitlines()[6:] == [  # the deepest depth of each, by the count its task is judged on
        "| preset | count, depth | seed | N = 1 | N = 4 | wide N = 1 | wake loop N = 4 |",
        "|---|---|---|---|---|---|---|",
        "| depo-k4 | per answer, 4 | 0 | 0.200 | 0.700 |  | 0.300 |",
        "| depo-k4 | per answer, 4 | 1 |  | 0.600 |  |  |",
        "| depo-mini | hops k mod n, 1 | 0 | 0.900 |  |  |  |",
        "| rule110-mini | per answer, 1 | 0 |  | 0.970 | 0.950 |  |",
        "",
    ]


def test_rule110_is_judged_at_a_glance_by_whole_rows_where_the_evaluation_has_them():
    runs = [{**RUNS["r-n4"], "exact": {"1": cell(0.4)}}, {**RUNS["r-wide"], "exact": {"1": cell(0.9)}}]
    text = results.results_markdown(100, 1, runs)
    assert "| rule110-mini | exact, 1 | 0 | 0.400 | 0.900 |" in text


def test_results_json_round_trips(tmp_path):
    runs = [RUNS["depo-k4-n1"], RUNS["depo-mini-n1"]]
    results.write_results_json(tmp_path / "RESULTS.json", runs, 100, 1)
    doc = results.read_results_json(tmp_path / "RESULTS.json")
    assert doc["results"] == runs and (doc["per_depth"], doc["seed"]) == (100, 1)
    assert doc["command"] == results.command(100, 1)
    assert results.results_markdown(100, 1, doc["results"]) == results.results_markdown(100, 1, runs)


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "cannot be read as JSON"),
        ('{"format": 2, "results": []}', "is not a sleepcore results file"),
        ('{"format": 1, "per_depth": 9, "seed": 1, "results": {}}', "is not a sleepcore results file"),
        ('{"format": 1, "results": []}', "integer per_depth and seed"),
        (
            '{"format": 1, "per_depth": 9, "seed": 1, "results": [{"checkpoint": "a"}]}',
            "lacks or mistypes weights_sha256",
        ),
        ("BAD_CELL", "'first' is not {depth: {acc, lo, hi, n}}"),
        ("CHANGED", "depo-k4-n1's result was evaluated on a changed task"),
        ({"answers": {"x": {"acc": 0.5, "lo": 0.4, "hi": 0.6, "n": 9}}}, "'answers' is not {depth: {acc, lo, hi, n}}"),
        ({"answers": {"1": {"acc": 1.5, "lo": 0.4, "hi": 0.6, "n": 9}}}, "'answers' is not {depth:"),
        ({"train_seed": "zero"}, "depo-k4-n1's result has a bad train_seed; write the file again"),
        ({"chance": "x"}, "has a bad chance"),
        ({"chance": {"1": "x"}}, "has a bad chance"),
        ({"passes": -3}, "has a bad passes -3"),
    ],
)
def test_a_malformed_results_json_is_refused_with_what_is_wrong(tmp_path, text, says):
    if text == "BAD_CELL":
        bad = {**RUNS["depo-k4-n1"], "first": {"1": {"acc": "high"}}}
        text = json.dumps({"format": 1, "per_depth": 9, "seed": 1, "results": [bad]})
    if isinstance(text, dict):  # one field of a result changed
        text = json.dumps({"format": 1, "per_depth": 9, "seed": 1, "results": [{**RUNS["depo-k4-n1"], **text}]})
    if text == "CHANGED":  # an evaluation off the trained task is never a row of the shipped tables
        bad = {**RUNS["depo-k4-n1"], "task_changed": {"n_min": [9, 10]}}
        text = json.dumps({"format": 1, "per_depth": 9, "seed": 1, "results": [bad]})
    (tmp_path / "RESULTS.json").write_text(text)
    with pytest.raises(ValueError, match=r"RESULTS\.json") as e:
        results.read_results_json(tmp_path / "RESULTS.json")
    assert says in str(e.value)


def test_eval_all_writes_both_files_from_one_evaluation(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)  # the command then has no prefix
    calls = []

    def evaluate_all(per_depth, seed, progress=True):
        calls.append((per_depth, seed))
        return [RUNS["r-n4"], RUNS["r-wide"]]

    monkeypatch.setattr(results, "evaluate_all", evaluate_all)
    md, js = tmp_path / "R.md", tmp_path / "R.json"
    args = ["eval", "--all", "--examples", "100", "--seed", "1", "--markdown", str(md), "--results-json", str(js)]
    assert main(args) == 0
    assert calls == [(100, 1)]  # evaluated once, written twice
    written_by = f"sleepcore eval --all --examples 100 --seed 1 --markdown {md} --results-json {js}"
    assert md.read_text() == results.results_markdown(100, 1, [RUNS["r-n4"], RUNS["r-wide"]], written_by)
    assert f"Written by `{written_by}`" in md.read_text(), "the command as it was given, its paths included"
    doc = results.read_results_json(js)
    assert doc["results"] == [RUNS["r-n4"], RUNS["r-wide"]] and doc["command"] == written_by


@pytest.mark.parametrize(
    "args, says",
    [
        (["eval", "r-n4", "--markdown", "x.md"], "use them with --all"),
        (["eval", "r-n4", "--results-json", "x.json"], "use them with --all"),
        (["eval", "--all", "--passes", "2"], "give no checkpoint, --passes or --set"),
        (["eval", "--all", "--set", "task.max_depth=6"], "give no checkpoint, --passes or --set"),
        (["eval", "r-n4", "--set", "model.d_model=8"], "--set changes only task settings here (task.KEY=VALUE)"),
        (["eval", "r-n4", "--set", "task"], "--set changes only task settings here (task.KEY=VALUE); got 'task'"),
        (["eval", "r-n4", "--set", "task.W"], "--set 'task.W': expected SECTION.KEY=VALUE"),
    ],
)
def test_eval_refuses_options_that_would_be_ignored(args, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert says in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "args, says",
    [
        (["eval", "r-n4", "--examples", "0"], "examples per depth (--examples) must be an integer >= 1; got 0"),
        (["eval", "r-n4", "--examples", "-5"], "examples per depth (--examples) must be an integer >= 1; got -5"),
        (["eval", "--all", "--examples", "0", "--markdown", "R.md"], "must be an integer >= 1; got 0"),
        (["eval", "r-n4", "--passes", "100000"], "passes must be at most 64 (test-time N); got [100000]"),
    ],
)
def test_eval_refuses_examples_and_passes_it_cannot_use(args, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert says in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing evaluated, nothing written


def test_an_unwritable_output_path_is_an_error_that_names_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(results, "evaluate_all", lambda *a, **k: pytest.fail("evaluated before the check"))
    (tmp_path / "R.md").mkdir()
    assert main(["eval", "--all", "--examples", "100", "--markdown", str(tmp_path / "R.md")]) == 2
    assert f"--markdown {tmp_path / 'R.md'} is a folder; give a file path" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert main(["eval", "--all", "--examples", "100", "--results-json", str(tmp_path / "afile" / "R.json")]) == 2
    assert (
        f"--results-json {tmp_path / 'afile' / 'R.json'}: {tmp_path / 'afile'} is a file, so no file can be made"
        in (capsys.readouterr().err)
    )


@pytest.mark.parametrize("port", ["99999", "-1", "0", "http"])
def test_the_app_refuses_a_port_that_is_not_one(port, capsys):
    with pytest.raises(SystemExit) as e:
        main(["app", "--port", port])
    assert e.value.code == 2
    assert f"argument --port: expected a port number from 1 to 65535, such as 8501; got '{port}'" in (
        capsys.readouterr().err
    )


def test_a_count_of_nothing_is_a_valid_cell_and_only_then_nan():
    """evaluate.Cell writes acc = NaN where nothing was counted (n = 0): a file holding one is not damaged."""
    assert results.is_counts({"1": {"acc": float("nan"), "lo": 0.0, "hi": 1.0, "n": 0}})
    assert not results.is_counts({"1": {"acc": float("nan"), "lo": 0.0, "hi": 1.0, "n": 3}})
    assert not results.is_counts({"1": {"acc": 0.5, "lo": -0.1, "hi": 1.0, "n": 3}})
    assert not results.is_counts({"one": {"acc": 0.5, "lo": 0.4, "hi": 0.6, "n": 3}})


def test_at_a_glance_keeps_one_result_per_cell_and_skips_what_it_cannot_judge():
    """Two results of one cell (a local rerun beside a shipped model): RESULTS.json's is kept. Controls at two N get
    two columns. A preset none of whose results holds its judged count is left out, not a crash; an empty cell
    (no answers: accuracy NaN) is None."""
    shipped = {**RUNS["r-n4"], "source": "RESULTS.json"}
    local = {**RUNS["r-n4"], "checkpoint": "a-rerun", "answers": {"1": cell(0.5)}, "source": "config.json"}
    attn = [fake(f"attn-{n}", "rule110-mini", "rule110", "attn-only", n, {"1": 0.1 * n}) for n in (1, 2)]
    empty = {**fake("g", "gsm-x", "gsm", "hybrid", 1, {}), "answers": {}}
    nan = {**RUNS["depo-mini-n1"], "effective": {"0": cell(1), "1": {**cell(0), "acc": float("nan"), "n": 0}}}
    columns, rows = results.glance([local, shipped, *attn, empty, nan])
    assert columns == ["N = 1", "N = 4", "attention only N = 1", "attention only N = 2"]
    assert [(r["preset"], r["N = 4"], r["attention only N = 1"], r["attention only N = 2"]) for r in rows] == [
        ("depo-mini", None, None, None),
        ("rule110-mini", 0.97, 0.1, 0.2),
    ]
    assert rows[0]["N = 1"] is None  # its deepest depth holds no answers
    assert results._glance({"gsm-x": [empty]}) == []  # nothing to show: no section
