"""`sleepcore sweep`: one checkpoint at several test-time N on the same examples; its table, figure and errors."""

import polars as pl
import pytest
from app_fixtures import app_checkpoints  # noqa: F401

from analysis.figures import accuracy_vs_test_passes, format_sweep, results_table
from sleepcore.cli import main
from sleepcore.results import evaluate_checkpoint, sweep_checkpoint


def test_a_sweep_evaluates_each_n_on_the_same_examples(app_checkpoints):  # noqa: F811
    ckpt = app_checkpoints / "tiny-depo-n2"
    rows = sweep_checkpoint(ckpt, [1, 2, 3], per_depth=6, seed=5, label="tiny-depo-n2")
    assert [r["passes"] for r in rows] == [1, 2, 3] and {r["trained_passes"] for r in rows} == {2}
    alone = [evaluate_checkpoint(ckpt, passes=n, per_depth=6, seed=5, label="tiny-depo-n2") for n in (1, 2, 3)]
    assert rows == alone  # the same numbers as separate evaluations at each N
    assert len({tuple((d, c["n"]) for d, c in r["answers"].items()) for r in rows}) == 1  # the same answers asked
    assert {"answers", "effective", "first"} <= set(rows[0])  # depo-mini: k mod n and the first query as well


@pytest.mark.parametrize("passes", [[0], [2, -1], [], [1.5], [True]])
def test_a_sweep_refuses_passes_that_are_not_a_test_time_n(app_checkpoints, passes):  # noqa: F811
    with pytest.raises(ValueError, match="passes must be integers >= 1"):
        sweep_checkpoint(app_checkpoints / "tiny-n2", passes, per_depth=2)


def sweep_rows(n_values=(1, 2, 4), trained=2, name="m"):
    rows = []
    for n in n_values:
        acc = {1: 0.5 + 0.1 * n, 3: 0.1 * n}
        cells = {str(d): {"acc": a, "lo": a - 0.05, "hi": a + 0.05, "n": 40} for d, a in acc.items()}
        rows.append(
            {"checkpoint": name, "passes": n, "trained_passes": trained, "variant": "wide", "task": "depo"}
            | {"answers": cells, "exact": {}, "chance": {"1": 0.1, "3": 0.1}}
        )
    return rows


def test_the_sweep_figure_draws_a_line_per_depth_and_marks_the_trained_n():
    fig = accuracy_vs_test_passes(results_table(sweep_rows()))
    lines = {t.name: (list(t.x), list(t.y)) for t in fig.data}
    assert lines == {"depth 1": ([1, 2, 4], [0.6, 0.7, 0.9]), "depth 3": ([1, 2, 4], [0.1, 0.2, 0.4])}
    vline = [s for s in fig.layout.shapes if s.x0 == s.x1]
    assert [s.x0 for s in vline] == [2]  # a baseline variant is drawn as lines too: it is one model's curve
    with pytest.raises(ValueError, match="one checkpoint"):
        accuracy_vs_test_passes(results_table(sweep_rows() + sweep_rows(name="other")))


def test_the_sweep_table_has_a_row_per_n_and_stars_the_trained_one():
    text = format_sweep(results_table(sweep_rows()))
    lines = text.splitlines()
    assert lines[0] == "per answer" and lines[1].split() == ["N", "depth", "1", "depth", "3"]
    assert lines[3].startswith("  2* ") and "0.700 [0.65, 0.75]" in lines[3] and "0.200 [0.15, 0.25]" in lines[3]
    assert lines[2].startswith("  1  ") and text.endswith("(* the N it was trained with)")


def test_the_sweep_command_writes_its_table_and_figure(app_checkpoints, tmp_path, capsys):  # noqa: F811
    out, fig = tmp_path / "s.parquet", tmp_path / "s.html"
    ckpt = str(app_checkpoints / "tiny-gsm-n2")
    args = ["sweep", ckpt, "--examples", "3", "--no-progress", "--out", str(out), "--figure", str(fig)]
    assert main(args) == 0
    df = pl.read_parquet(out)
    assert sorted(df["passes"].unique().to_list()) == [1, 2, 3, 4]  # default: 1 .. 2 × the trained N
    assert set(df["metric"].unique().to_list()) == {"answers", "effective"}
    assert "operations, the question alone" in capsys.readouterr().out
    assert "the question alone" in fig.read_text() and "plotly" in fig.read_text()


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--figure", "x.gif"], "--figure must end in .html, .svg, .pdf, .png"),
        (["--passes", "0,2"], "passes must be integers >= 1"),
        (["--examples", "0"], "--examples must be >= 1"),
    ],
)
def test_the_sweep_command_says_what_is_wrong(app_checkpoints, tmp_path, capsys, extra, says):  # noqa: F811
    assert main(["sweep", str(app_checkpoints / "tiny-n2"), "--no-progress", *extra]) == 2
    assert says in capsys.readouterr().err
