"""`sleepcore sweep`: one checkpoint at several test-time N on the same examples; its table, figure and errors."""

import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from app_fixtures import app_checkpoints  # noqa: F401

from analysis.figures import accuracy_vs_test_passes, format_sweep, results_table
from sleepcore.checkpoint import read_info
from sleepcore.cli import main
from sleepcore.results import (
    SWEEP_FILE,
    cell_text,
    evaluate_checkpoint,
    read_sweep,
    sweep_checkpoint,
    sweep_command,
)


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
    title, blank, *lines = text.splitlines()
    assert title == "m at each test-time N (trained N = 2)" and blank == ""
    assert lines[0] == "per answer" and lines[1].split() == ["N", "depth", "1", "depth", "3"]
    assert lines[3].startswith("  2* ") and "0.700 [0.650, 0.750]" in lines[3] and "0.200 [0.150, 0.250]" in lines[3]
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
        (["--passes", "1,65"], "passes must be at most 64 (test-time N); got [65]"),
    ],
)
def test_the_sweep_command_says_what_is_wrong(app_checkpoints, tmp_path, capsys, extra, says):  # noqa: F811
    assert main(["sweep", str(app_checkpoints / "tiny-n2"), "--no-progress", *extra]) == 2
    assert says in capsys.readouterr().err


def test_a_repeated_n_is_swept_once(app_checkpoints, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "s.parquet"
    args = ["sweep", str(app_checkpoints / "tiny-n2"), "--passes", "2,1,2", "--examples", "2", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0  # as `attribute` does with a repeated n
    df = pl.read_parquet(out)
    assert sorted(df["passes"].unique().to_list()) == [1, 2]
    assert df.height == df.select("passes", "metric", "depth").n_unique()  # one row per N, count and depth


@pytest.mark.parametrize(
    "flag, out, says",
    [
        ("--out", "a-folder", "--out {tmp}/a-folder is a folder; give a file path"),
        ("--out", "a-file/s.parquet", "--out {tmp}/a-file/s.parquet: {tmp}/a-file is a file, so no file can be made"),
        ("--out", "a-file/deeper/s.parquet", ": {tmp}/a-file is a file, so no file can be made below it"),
        ("--figure", "a-folder.html", "--figure {tmp}/a-folder.html is a folder; give a file path"),
        ("--figure", "a-file/s.html", "--figure {tmp}/a-file/s.html: {tmp}/a-file is a file"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused_before_the_sweep(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    monkeypatch,
    flag,
    out,
    says,
):
    import sleepcore.results

    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-folder.html").mkdir()
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(sleepcore.results, "sweep_checkpoint", lambda *a, **k: pytest.fail("evaluated first"))
    assert main(["sweep", str(app_checkpoints / "tiny-n2"), "--no-progress", flag, str(tmp_path / out)]) == 2
    assert says.format(tmp=tmp_path) in capsys.readouterr().err


@pytest.mark.parametrize(
    "passes, says",
    [
        (",", "argument --passes/-N: give at least one of the pass counts, such as 1,2,4; got ','"),
        ("a,b", "argument --passes/-N: expected pass counts: comma-separated integers such as 1,2,4; got 'a,b'"),
    ],
)
def test_passes_that_are_not_integers_are_refused_naming_the_flag(app_checkpoints, capsys, passes, says):  # noqa: F811
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(app_checkpoints / "tiny-n2"), "--passes", passes])
    error = capsys.readouterr().err.splitlines()[-1]  # after the usage
    assert e.value.code == 2 and says in error and "seed" not in error and "0," not in error


@pytest.mark.parametrize("per_depth", [0, -1])
def test_a_sweep_point_needs_examples(app_checkpoints, monkeypatch, per_depth):  # noqa: F811
    from analysis import session

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(app_checkpoints))
    with pytest.raises(ValueError, match=f"examples per depth .* must be an integer >= 1; got {per_depth}"):
        session.sweep_point(session.load("tiny-n2"), 2, per_depth=per_depth)


# --- a sweep shipped beside a checkpoint (sweep.parquet) ------------------------------------------------------
@pytest.fixture(scope="module")
def swept(app_checkpoints, tmp_path_factory):  # noqa: F811
    """A copy of tiny-n2 with its sweep (P = 1..4, 3 sequences per depth) written beside it by `sleepcore sweep`."""
    folder = tmp_path_factory.mktemp("swept") / "tiny-n2"
    shutil.copytree(app_checkpoints / "tiny-n2", folder)
    args = ["sweep", str(folder), "--examples", "3", "--seed", "5", "--no-progress", "--out", str(folder / SWEEP_FILE)]
    assert main(args) == 0
    return folder


@pytest.fixture
def with_sweep(swept, tmp_path):
    """`swept`, copied for one test to change."""
    return Path(shutil.copytree(swept, tmp_path / "tiny-n2"))


def _edit(path, **columns) -> None:
    """Rewrite a sweep table with some columns changed, as a hand edit or a damaged copy would."""
    pl.read_parquet(path).with_columns(**columns).write_parquet(path)


def test_a_shipped_sweep_is_read_with_its_name_and_checked_against_the_weights(with_sweep):
    sweep = read_sweep(with_sweep)
    assert set(sweep["checkpoint"].to_list()) == {"tiny-n2"}  # the folder's name, whatever path it was swept from
    assert sorted(sweep["passes"].unique().to_list()) == [1, 2, 3, 4]
    assert sweep["per_depth"].unique().to_list() == [3] and sweep["eval_seed"].unique().to_list() == [5]
    again = results_table(sweep_checkpoint(with_sweep, [3], per_depth=3, seed=5))
    assert sweep.filter(pl.col("passes") == 3)["acc"].to_list() == again["acc"].to_list()
    assert sweep_command("tiny-n2", sweep, 2) == (
        "sleepcore sweep tiny-n2 --examples 3 --seed 5 --out checkpoints/tiny-n2/sweep.parquet"
    )
    assert "--passes 1,3" in sweep_command("x", sweep.filter(pl.col("passes").is_in([1, 3])), 2)
    assert read_sweep(with_sweep.parent / "nothing-here") is None


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda p: p.write_bytes(b"PAR1 not really"), "is not a readable Parquet table"),
        (lambda p: pl.DataFrame({"acc": [0.5]}).write_parquet(p), "is not a sweep table (missing columns"),
        (lambda p: pl.read_parquet(p).with_columns(acc=pl.lit("high")).write_parquet(p), "(column types {"),
        (
            lambda p: (
                pl.read_parquet(p)
                .with_columns(eval_seed=pl.lit(1, dtype=pl.Int64))
                .head(3)
                .vstack(pl.read_parquet(p))
                .write_parquet(p)
            ),
            "mixes evaluations (eval_seed",
        ),
        (lambda p: pl.read_parquet(p).with_columns(weights_sha256=pl.lit("0" * 64)).write_parquet(p), "other weights"),
        # values the app would draw wrongly, or fail on (an audit of the app, 2026-12-05)
        (lambda p: _edit(p, metric=pl.lit("bogus")), "metrics ['bogus']: it needs 'answers', and knows answers,"),
        (lambda p: _edit(p, metric=pl.lit("exact")), "metrics ['exact']: it needs 'answers'"),
        (lambda p: _edit(p, metric_label=pl.lit(None, pl.String)), "(empty cells in metric_label)"),
        (lambda p: _edit(p, passes=pl.when(pl.col("n") > 0).then(None).otherwise(1)), "(empty cells in passes)"),
        (lambda p: _edit(p, lo=pl.lit(None, pl.Float64)), "(empty cells in lo)"),
        (lambda p: pl.concat([pl.read_parquet(p)] * 2).write_parquet(p), "(a (metric, passes, depth) row twice)"),
        (lambda p: _edit(p, acc=pl.col("acc") + 2), "(values out of range in acc)"),
        (
            lambda p: _edit(p, depth=pl.when(pl.col("depth") == pl.col("depth").min()).then(-1).otherwise("depth")),
            "out of range in depth",
        ),
        (lambda p: _edit(p, trained_passes=pl.lit(9)), "says tiny-n2 was trained at N = 9, its config.json at N = 2"),
    ],
)
def test_a_shipped_sweep_that_cannot_be_used_says_why_and_how_to_redo_it(with_sweep, damage, says):
    damage(with_sweep / SWEEP_FILE)
    redo = f"write it again with: sleepcore sweep {with_sweep} --out {with_sweep / SWEEP_FILE}"  # its real path
    with pytest.raises(ValueError, match=re.escape(redo)) as e:
        read_sweep(with_sweep)
    assert says in str(e.value)


def test_the_card_tabulates_the_shipped_sweep_and_ship_drops_it_with_new_weights(with_sweep, app_checkpoints, capsys):  # noqa: F811
    from sleepcore import cards
    from sleepcore.checkpoint import CheckpointError, read_info

    cards.refresh_cards(with_sweep.parent)
    card = (with_sweep / "README.md").read_text()
    sweep = read_sweep(with_sweep)
    assert "## Sleep at test time" in card and sweep_command("tiny-n2", sweep, 2) in card
    rows = [line for line in card.splitlines() if line.startswith("| ") and "depth" not in line and "[" in line]
    rows = [r for r in rows if r.split("|")[1].strip().rstrip(" (trained)").strip("*").isdigit()]
    assert [r.split("|")[1].strip() for r in rows[-4:]] == ["1", "**2** (trained)", "3", "4"]
    judged = "exact"  # the count Rule 110 is judged on (Rule110.judged_on): whole rows right
    cell = sweep.filter((pl.col("metric") == judged) & (pl.col("passes") == 3)).sort("depth").row(0, named=True)
    assert f"| 3 | {cell_text(cell)} |" in card and "accuracy counted as: exact (whole sequence right); 95%" in card
    assert "the sweep above runs the same weights at other N" in card
    (with_sweep / "probes.parquet").write_bytes(b"derived from these weights")
    cards.ship(app_checkpoints / "tiny-n2", "tiny-n2", root=with_sweep.parent)  # the same weights: tables stay
    assert (with_sweep / SWEEP_FILE).is_file() and (with_sweep / "probes.parquet").is_file()
    before = {f: (with_sweep / f).read_bytes() for f in ("model.safetensors", SWEEP_FILE, "probes.parquet")}
    with pytest.raises(CheckpointError, match=r"tiny-n2 already holds a checkpoint with other weights; .*--replace"):
        cards.ship(app_checkpoints / "tiny-n1", "tiny-n2", root=with_sweep.parent)  # a typo in --name, say
    assert {f: (with_sweep / f).read_bytes() for f in before} == before, "refused: nothing touched"
    (partial := with_sweep.parent / "cut-short").mkdir()  # a copy cut short: weights, no config.json
    (partial / "model.safetensors").write_bytes(b"part of a file")
    with pytest.raises(CheckpointError, match=r"cut-short already holds a checkpoint with other weights"):
        cards.ship(app_checkpoints / "tiny-n1", "cut-short", root=with_sweep.parent)
    assert cards.ship(app_checkpoints / "tiny-n1", "cut-short", root=with_sweep.parent, replace=True) == partial
    cards.ship(app_checkpoints / "tiny-n1", "tiny-n2", root=with_sweep.parent, replace=True)  # other weights: both go
    assert not (with_sweep / SWEEP_FILE).exists() and not (with_sweep / "probes.parquet").exists()
    assert capsys.readouterr().out.count("computed from the weights this ship replaces") == 2
    assert "## Sleep at test time" not in (with_sweep / "README.md").read_text()
    assert read_info(with_sweep)["sleep"]["passes"] == 1


def test_refresh_cards_reads_every_sweep_before_it_writes_a_card(with_sweep, app_checkpoints):  # noqa: F811
    from sleepcore import cards
    from sleepcore.checkpoint import CheckpointError

    shutil.copytree(app_checkpoints / "tiny-n1", with_sweep.parent / "a-first")
    (with_sweep.parent / "a-first" / "README.md").write_text("stale")
    (with_sweep / SWEEP_FILE).write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="no card was rewritten: .*tiny-n2/sweep.parquet is not a readable"):
        cards.refresh_cards(with_sweep.parent)
    assert (with_sweep.parent / "a-first" / "README.md").read_text() == "stale"
    (with_sweep / SWEEP_FILE).unlink()  # now only the config.json below is wrong
    shutil.copytree(app_checkpoints / "tiny-n1", with_sweep.parent / "z-last")
    config = with_sweep.parent / "z-last" / "config.json"
    config.write_text(config.read_text()[:200])  # a config.json cut short, named after the others
    with pytest.raises(CheckpointError, match="no card was rewritten: z-last: .*z-last/config.json"):
        cards.refresh_cards(with_sweep.parent)
    assert (with_sweep.parent / "a-first" / "README.md").read_text() == "stale", "all or nothing"


def test_the_figure_set_draws_a_shipped_sweep(with_sweep, monkeypatch):
    from analysis.figure_set import checkpoint_figures

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(with_sweep.parent))
    figures = dict(checkpoint_figures("tiny-n2"))
    fig = figures["tiny-n2-test-time-passes"]
    assert [list(t.x) for t in fig.data if t.name == "depth 1"] == [[1, 2, 3, 4]]
    sweep = read_sweep(with_sweep)
    exact = sweep.filter((pl.col("metric") == "exact") & (pl.col("depth") == 1)).sort("passes")["acc"].to_list()
    answers = sweep.filter((pl.col("metric") == "answers") & (pl.col("depth") == 1)).sort("passes")["acc"].to_list()
    assert exact != answers  # so the figure below is seen to be drawn by whole rows, the count Rule 110 is judged on
    assert [list(t.y) for t in fig.data if t.name == "depth 1"] == [exact]


@pytest.mark.parametrize("name", ["../escaped", ".", "..", "/tmp/elsewhere", "a/b", "", ".hidden"])
def test_ship_takes_a_name_not_a_path(app_checkpoints, tmp_path, name):  # noqa: F811
    from sleepcore import cards

    root = tmp_path / "root" / "checkpoints"
    root.mkdir(parents=True)
    with pytest.raises(ValueError, match="checkpoint name must be letters, digits"):
        cards.ship(app_checkpoints / "tiny-n1", name, root=root)
    assert not list(tmp_path.rglob("*.safetensors")) and not list(tmp_path.rglob("README.md")), "nothing written"
    assert main(["ship", str(app_checkpoints / "tiny-n1"), "--name", "../x"]) == 2


def test_check_out_looks_at_the_folder_written_into(tmp_path, monkeypatch):
    import os

    from analysis import cli

    (tmp_path / "parent" / "child").mkdir(parents=True)
    (tmp_path / "old.parquet").write_text("")
    readonly = {tmp_path / "parent"}  # as a read-only folder holding a writable one would be to a normal user
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) not in readonly and real(p, mode))
    cli.check_out(tmp_path / "parent" / "child", folder=True)  # written into: its parent does not matter
    cli.check_out(tmp_path / "parent" / "child" / "new", folder=True)
    cli.check_out(tmp_path / "old.parquet")  # an existing file is replaced through a file beside it
    with pytest.raises(ValueError, match="the folder .*parent is not writable"):
        cli.check_out(tmp_path / "parent" / "t.parquet")
    with pytest.raises(ValueError, match="the folder .*parent is not writable"):
        cli.check_out(tmp_path / "parent" / "new", folder=True)
    readonly.add(Path("/"))
    with pytest.raises(ValueError, match="the folder / is not writable"):  # not a StopIteration traceback
        cli.check_out("/", folder=True)


def _shipped(name):
    from sleepcore.checkpoint import CHECKPOINT_ROOT

    return CHECKPOINT_ROOT / name  # a path: under the full suite, names resolve in the app fixture's folder


def test_an_evaluation_on_a_changed_task_asks_what_was_changed_and_records_it():
    """gsm chains longer than trained (5 and 6 operations fit its window): the same weights, other examples."""
    ckpt = _shipped("gsm-chain-1w-long-n4")
    changes = {"max_depth": 6, "depths": [5, 6]}
    res = evaluate_checkpoint(ckpt, per_depth=4, seed=3, task_changes=changes)
    assert res["task_changed"] == {"depths": [[1, 2, 3, 4], [5, 6]], "max_depth": [4, 6]}
    assert sorted(res["effective"]) == ["5", "6"] and all(c["n"] == 4 for c in res["effective"].values())
    plain = evaluate_checkpoint(ckpt, per_depth=4, seed=3)
    assert "task_changed" not in plain and sorted(plain["effective"]) == ["1", "2", "3", "4"]
    # the same settings as the trained ones are no change
    assert "task_changed" not in evaluate_checkpoint(ckpt, per_depth=2, seed=3, task_changes={"max_depth": 4})
    # nor is a setting an older config.json lacks, given at its default (gsm-mini predates `order`)
    old = evaluate_checkpoint(_shipped("gsm-mini-n1"), per_depth=1, seed=3, task_changes={"order": "deepest"})
    assert "order" not in read_info(_shipped("gsm-mini-n1"))["task"]["params"] and "task_changed" not in old
    table = results_table([res])
    assert table["task_changed"].unique().to_list() == ["depths=[5, 6], max_depth=6"]
    title = format_sweep(table).splitlines()[0]
    assert title.endswith(" at each test-time N (trained N = 4), on a changed task: depths=[5, 6], max_depth=6")
    assert results_table([plain])["task_changed"].null_count() == results_table([plain]).height


@pytest.mark.parametrize(
    "name, changes, says",
    [
        ("depo-k4-n4", {"max_depth": 6, "depths": [5, 6]}, r"changes the vocabulary of task 'depo' \(30 tokens → 32\)"),
        ("gsm-chain-1w-long-n4", {"max_depth": 7, "depths": [7]}, "more than context_windows \\* window = 48"),
        ("gsm-chain-1w-long-n4", {"window": 64}, r"window=64 changes the context window \(48 → 64\)"),
        ("gsm-chain-1w-long-n4", {"max_depth": 3}, r"= \[1, 3\]; got 4: set task.depths with it, e.g. --set"),
        ("gsm-chain-1w-long-n4", {"hops": 2}, r"unknown parameter\(s\) hops for task 'gsm'; valid parameters:"),
        ("gsm-chain-1w-long-n4", {"ops": ["-", "+"]}, "the same number of tokens, reordered or replaced"),
        ("rule110-mini-full-attention", {"W": 12}, r"W=12 changes the context window \(17 → 13\)"),
    ],
)
def test_a_change_the_weights_cannot_read_is_refused_before_anything_runs(name, changes, says):
    with pytest.raises(ValueError, match=says):
        sweep_checkpoint(_shipped(name), [1, 2], per_depth=2, task_changes=changes)


def test_sweep_on_a_changed_task_prints_it_and_never_writes_the_checkpoints_own_sweep(tmp_path, capsys):
    ckpt = tmp_path / "gsm-chain-1w-long-n4"
    shutil.copytree(_shipped("gsm-chain-1w-long-n4"), ckpt)
    before = (ckpt / SWEEP_FILE).read_bytes()
    deeper = ["--set", "task.max_depth=6", "--set", "task.depths=[6]", "--examples", "3", "--no-progress"]
    assert main(["sweep", str(ckpt), "--passes", "4,5", *deeper, "--out", str(ckpt / SWEEP_FILE)]) == 2
    assert "is a checkpoint's own sweep.parquet" in capsys.readouterr().err
    assert (ckpt / SWEEP_FILE).read_bytes() == before
    # by any path to a checkpoint folder, not only the one the checkpoint argument names
    other = tmp_path / "copy"
    shutil.copytree(ckpt, other)
    assert main(["sweep", str(ckpt), "--passes", "4", *deeper, "--out", str(other / SWEEP_FILE)]) == 2
    assert "is a checkpoint's own sweep.parquet" in capsys.readouterr().err
    assert (other / SWEEP_FILE).read_bytes() == before
    assert main(["sweep", str(ckpt), "--passes", "4,5", *deeper, "--out", str(tmp_path / "deep.parquet")]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(", on a changed task: depths=[6], max_depth=6")
    html = tmp_path / "deep.html"
    assert main(["sweep", str(ckpt), "--passes", "4", *deeper, "--figure", str(html)]) == 0
    assert "on a changed task: depths=[6], max_depth=6" in html.read_text()  # the figure says so too
    capsys.readouterr()
    deep = pl.read_parquet(tmp_path / "deep.parquet")
    assert deep["task_changed"].unique().to_list() == ["depths=[6], max_depth=6"]
    assert sorted(deep["passes"].unique().to_list()) == [4, 5]
    shutil.copy(tmp_path / "deep.parquet", ckpt / SWEEP_FILE)  # copied in by hand: the app must not show it
    with pytest.raises(ValueError, match=r"was computed on a changed task \(depths=\[6\], max_depth=6\), not the one"):
        read_sweep(ckpt)
    assert main(["sweep", str(ckpt), "--set", "model.d_model=8"]) == 2
    assert "--set changes only task settings here" in capsys.readouterr().err
