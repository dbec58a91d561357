"""What every `sleepcore` command checks before it computes: seeds in range, output paths that can really be written
(and in the format their suffix names), a browser for figure files, and settings that mean something for the model
(a test-time N for a model that never evicts, probe counts that leave every fact depth a train/test split)."""

from pathlib import Path

import polars as pl
import pytest
from app_fixtures import app_checkpoints  # noqa: F401

from analysis.figures import format_sweep, results_table
from sleepcore.cli import main

HUGE = "99999999999999999999999999"
LIMIT = 2**63  # seeds: 0 .. 2**63 - 1 (Int64 columns, torch generators)


@pytest.fixture
def nothing_computes(monkeypatch):
    """Every command's computing fails the test: the checks must refuse first."""
    import analysis.attribution
    import analysis.figure_set
    import analysis.probes
    import sleepcore.bench
    import sleepcore.results
    import sleepcore.trace
    import sleepcore.train

    def computed(*args, **kwargs):
        pytest.fail("computed before the check")

    for module, name in [
        (sleepcore.results, "sweep_checkpoint"),
        (sleepcore.results, "evaluate_checkpoint"),
        (sleepcore.results, "evaluate_all"),
        (sleepcore.trace, "trace_checkpoint"),
        (sleepcore.train, "train"),
        (sleepcore.bench, "run"),
        (analysis.attribution, "attribute_checkpoint"),
        (analysis.probes, "probe_checkpoint"),
        (analysis.figure_set, "headline_figures"),
    ]:
        monkeypatch.setattr(module, name, computed)


def fails(argv, capsys) -> str:
    """Run a command that must be refused with exit code 2 and one line on stderr (argparse adds its usage line
    for a bad argument); returns the error line."""
    try:
        rc = main(argv)
    except SystemExit as e:  # a bad argument: argparse says which, after the usage
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# --- 1. seeds -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [HUGE, str(LIMIT), "-1"])
@pytest.mark.parametrize(
    "command",
    [
        ["sweep", "CKPT", "--examples", "1", "--no-progress", "--seed"],
        ["eval", "CKPT", "--examples", "1", "--seed"],
        ["trace", "CKPT", "--out", "OUT", "--seed"],
        ["attribute", "CKPT", "-K", "1", "--no-progress", "--seed"],
        ["train", "--preset", "tiny", "--out", "OUT", "--no-progress", "--seed"],
        ["train", "--preset", "tiny", "--out", "OUT", "--no-progress", "--data-seed"],
    ],
)
def test_a_seed_out_of_range_is_refused_when_parsed(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    nothing_computes,
    command,
    value,
):
    argv = [
        str(app_checkpoints / "tiny-n2") if a == "CKPT" else str(tmp_path / "o") if a == "OUT" else a for a in command
    ]
    line = fails([*argv, value], capsys)
    assert f"{command[-1]}: expected a seed: an integer from 0 to 2**63 - 1 ({LIMIT - 1})" in line
    assert line.endswith(f"got '{value}'")
    assert not (tmp_path / "o").exists()


def test_the_largest_seed_is_swept_and_recorded(app_checkpoints, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "s.parquet"
    argv = ["sweep", str(app_checkpoints / "tiny-n2"), "-N", "1", "--examples", "1", "--seed", str(LIMIT - 1)]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    assert pl.read_parquet(out)["eval_seed"].unique().to_list() == [LIMIT - 1]


def test_probe_seeds_must_fit_the_tables_int32_column(app_checkpoints, capsys, nothing_computes):  # noqa: F811
    line = fails(["probe", str(app_checkpoints / "tiny-n2"), "--seeds", f"0,{2**31}", "--no-progress"], capsys)
    assert line.endswith(
        f"--seeds must be below 2**31 ({2**31}: the probes table stores them as Int32), such as 0,1,2; got [{2**31}]"
    )


# --- 2. output paths: really writable, and figures need a browser ---------------------------------------------

UNWRITABLE = Path("/proc")  # no file can be made there, even by root, for whom os.access says yes


@pytest.mark.skipif(not UNWRITABLE.is_dir(), reason="needs /proc")
@pytest.mark.parametrize(
    "argv, flag, path",
    [
        (["attribute", "CKPT", "-K", "1", "--no-progress", "--out"], "--out", "/proc/x.parquet"),
        (["sweep", "CKPT", "-N", "1", "--examples", "1", "--no-progress", "--figure"], "--figure", "/proc/x.html"),
        (["sweep", "CKPT", "-N", "1", "--examples", "1", "--no-progress", "--out"], "--out", "/proc/x.parquet"),
        (["probe", "CKPT", "--examples", "32", "--no-progress", "--out"], "--out", "/proc/x.parquet"),
        (["trace", "CKPT", "-K", "1", "--out"], "--out", "/proc/trace"),
        (["eval", "--all", "--examples", "1", "--markdown"], "--markdown", "/proc/R.md"),
        (["eval", "--all", "--examples", "1", "--results-json"], "--results-json", "/proc/R.json"),
        (["bench", "ops", "--quick", "--out"], "--out", "/proc/bench"),
        (["train", "--preset", "tiny", "--no-progress", "--out"], "--out", "/proc/run"),
        (["figures", "--format", "svg", "--checkpoints", "tiny-n2", "--out"], "--out", "/proc/figures"),
    ],
)
def test_an_output_path_where_no_file_can_be_made_is_refused_before_computing(
    app_checkpoints,  # noqa: F811
    capsys,
    nothing_computes,
    argv,
    flag,
    path,
):
    argv = [str(app_checkpoints / "tiny-n2") if a == "CKPT" else a for a in argv]
    line = fails([*argv, path], capsys)
    assert f"error: {flag} {path}: no file can be made in the folder /proc" in line  # the user's path, not a temp file
    assert "give a path in a writable folder" in line


def test_check_out_leaves_nothing_behind(tmp_path):
    from analysis.cli import check_out

    check_out(tmp_path / "t.parquet")
    check_out(tmp_path / "new" / "deeper", folder=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["svg", "pdf", "png"])
def test_a_figure_file_without_a_browser_is_refused_before_the_sweep_writes_anything(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    monkeypatch,
    nothing_computes,
    fmt,
):
    from analysis import export

    monkeypatch.setattr(export, "find_browser", lambda: None)
    out, figure = tmp_path / "ok.parquet", tmp_path / f"x.{fmt}"
    argv = ["sweep", str(app_checkpoints / "tiny-n2"), "-N", "1", "--examples", "2", "--no-progress"]
    line = fails([*argv, "--out", str(out), "--figure", str(figure)], capsys)
    assert f"--figure {figure} needs Chromium" in line and "write the figure as .html" in line
    assert list(tmp_path.iterdir()) == []


def test_the_figure_set_without_a_browser_is_refused_before_drawing(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    monkeypatch,
    nothing_computes,
):
    from analysis import export

    monkeypatch.setattr(export, "find_browser", lambda: None)
    line = fails(["figures", "--out", str(tmp_path / "f"), "--format", "svg,png", "--checkpoints", "tiny-n2"], capsys)
    assert "--format svg,png needs Chromium" in line
    assert list(tmp_path.iterdir()) == []


# --- 3. a table is written in the format its suffix names -----------------------------------------------------


def test_a_sweep_table_is_written_as_csv_or_parquet_by_its_suffix(app_checkpoints, tmp_path, capsys):  # noqa: F811
    argv = ["sweep", str(app_checkpoints / "tiny-n2"), "-N", "1", "--examples", "2", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "s.csv")]) == 0
    assert main([*argv, "--out", str(tmp_path / "s.parquet")]) == 0
    csv, parquet = pl.read_csv(tmp_path / "s.csv"), pl.read_parquet(tmp_path / "s.parquet")
    assert not (tmp_path / "s.csv").read_bytes().startswith(b"PAR1")
    assert csv.columns == parquet.columns and csv.height == parquet.height > 0
    assert csv["acc"].to_list() == parquet["acc"].to_list()


@pytest.mark.parametrize(
    "argv",
    [
        ["sweep", "CKPT", "-N", "1", "--examples", "2"],
        ["probe", "CKPT", "--examples", "32"],
        ["attribute", "CKPT", "-K", "1"],
    ],
)
@pytest.mark.parametrize("name", ["p.json", "p.txt", "p"])
def test_a_table_suffix_that_is_no_table_format_is_refused_before_computing(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    nothing_computes,
    argv,
    name,
):
    argv = [str(app_checkpoints / "tiny-n2") if a == "CKPT" else a for a in argv]
    line = fails([*argv, "--no-progress", "--out", str(tmp_path / name)], capsys)
    assert line.endswith(f"--out must end in .parquet or .csv (the table's format); got {name!r}")
    assert list(tmp_path.iterdir()) == []


# --- 4. the sweep's text table ----------------------------------------------------------------------------------


def sweep_rows(n_values, trained):
    cell = {"acc": 0.9992, "lo": 0.9951, "hi": 1.0, "n": 250}
    return [
        {"checkpoint": "m", "passes": n, "trained_passes": trained, "task": "depo"}
        | {"answers": {"1": cell, "3": {"acc": 0.5, "lo": 0.4312, "hi": 0.5688, "n": 250}}, "chance": {}}
        for n in n_values
    ]


def test_the_sweep_table_prints_its_bounds_as_eval_does():
    text = format_sweep(results_table(sweep_rows((1, 2), trained=2)))
    assert "0.999 [0.995, 1.000]" in text and "0.500 [0.431, 0.569]" in text
    assert "[1.00" not in text and "[0.43," not in text
    assert text.endswith("(* the N it was trained with)") and "  2* " in text


def test_the_star_is_explained_only_where_a_row_has_it():
    text = format_sweep(results_table(sweep_rows((1, 2), trained=4)))
    assert "*" not in text
    assert text.splitlines()[-1].startswith("  2  ")


# --- 5. settings that mean nothing for the model ----------------------------------------------------------------


def test_attributing_a_model_that_never_evicts_is_refused(app_checkpoints, capsys, nothing_computes):  # noqa: F811
    line = fails(["attribute", str(app_checkpoints / "tiny-full-attention"), "-K", "2", "--no-progress"], capsys)
    assert "never evicts (full attention keeps the whole context), so no token is evicted" in line
    assert "nothing to attribute" in line


@pytest.mark.parametrize(
    "argv, given",
    [
        (["sweep", "CKPT", "-N", "1,3", "--examples", "1", "--no-progress"], "got --passes 1,3"),
        (["trace", "CKPT", "--passes", "3", "--out", "OUT"], "got --passes 3"),
        (["eval", "CKPT", "--passes", "2", "--examples", "1"], "got --passes 2"),
    ],
)
def test_a_test_time_n_is_refused_for_a_model_that_never_evicts(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    nothing_computes,
    argv,
    given,
):
    ckpt = str(app_checkpoints / "tiny-full-attention")
    argv = [ckpt if a == "CKPT" else str(tmp_path / "t") if a == "OUT" else a for a in argv]
    line = fails(argv, capsys)
    assert "never evicts (full attention keeps the whole context), so it never sleeps and test-time N" in line
    assert line.endswith(f"only N = 1 is meaningful; {given}")


def test_n_1_on_full_attention_and_any_n_on_attention_only_still_run(app_checkpoints, capsys):  # noqa: F811
    # attn-only evicts, and its sleep passes run over its attention layers (a trace records them): N is its setting
    assert (
        main(["sweep", str(app_checkpoints / "tiny-full-attention"), "-N", "1", "--examples", "1", "--no-progress"])
        == 0
    )
    capsys.readouterr()
    # with no -N the sweep of a model that never evicts is N = 1 alone, not the 1 .. 2N it would refuse
    assert main(["sweep", str(app_checkpoints / "tiny-full-attention"), "--examples", "1", "--no-progress"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:4].strip().rstrip("*").isdigit()]
    assert rows and set(rows) == {"1*"}
    assert (
        main(["sweep", str(app_checkpoints / "tiny-attn-only"), "-N", "1,2", "--examples", "1", "--no-progress"]) == 0
    )


def test_probe_examples_must_give_every_fact_depth_a_train_and_test_split(
    app_checkpoints,  # noqa: F811
    capsys,
    monkeypatch,
):
    import re

    import analysis.probes
    from analysis.probes import SCHEMA

    ckpt = str(app_checkpoints / "tiny-n2")  # rule110: facts at depths 0 .. 8
    for few in ("2", "3"):
        line = fails(["probe", ckpt, "--examples", few, "--no-progress"], capsys)
        assert f"--examples {few} leaves fact depth(s) " in line and "fewer than the 2 examples a probe needs" in line
        need = int(re.search(r"needs --examples >= (\d+) for every fact depth from 0 to 8", line).group(1))
    probed = []
    monkeypatch.setattr(
        analysis.probes, "probe_checkpoint", lambda *a, **k: probed.append(k) or pl.DataFrame(schema=SCHEMA)
    )
    assert main(["probe", ckpt, "--examples", str(need), "--no-progress"]) == 0  # the minimum it gave is enough
    assert probed[-1]["examples"] == need
    assert fails(["probe", ckpt, "--examples", str(need - 1), "--no-progress"], capsys)  # and it is the minimum
    assert main(["probe", ckpt, "--examples", "3", "--max-fact-depth", "1", "--no-progress"]) == 0  # shallow: enough


def test_a_max_fact_depth_beyond_the_task_is_refused(app_checkpoints, capsys, nothing_computes):  # noqa: F811
    line = fails(["probe", str(app_checkpoints / "tiny-n2"), "--max-fact-depth", "99", "--no-progress"], capsys)
    assert line.endswith("--max-fact-depth must be from 0 to 8 (the deepest facts of the task, rule110); got 99")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--preset", "tiny", "--no-progress", "--out", ""],
        ["figures", "--format", "svg", "--out", " "],
        ["bench", "recorder", "--out", ""],
    ],
)
def test_an_empty_output_path_is_refused_not_the_current_folder(tmp_path, monkeypatch, capsys, nothing_computes, argv):
    monkeypatch.chdir(tmp_path)
    line = fails(argv, capsys)
    assert "--out is empty; give a folder path" in line
    assert list(tmp_path.iterdir()) == []


# --- a checkpoints folder that holds none, and what `ship` may overwrite ----------------------------------------


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_commands_over_every_checkpoint_refuse_a_folder_that_holds_none(tmp_path, monkeypatch, capsys, make):
    """A typo in $SLEEPCORE_CHECKPOINTS must not write an empty RESULTS.md over the real one, nor report success."""
    root = tmp_path / "ckpts"
    if make == "empty":
        root.mkdir()
    elif make == "file":
        root.write_text("")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(root))
    (md := tmp_path / "RESULTS.md").write_text("the real results")
    says = {"missing": "does not exist", "empty": "holds no checkpoint", "file": "is a file"}[make]
    for argv in (
        ["eval", "--all", "--examples", "1", "--markdown", str(md)],
        ["ship", "--refresh-cards"],
        ["figures", "--format", "svg", "--out", str(tmp_path / "figs")],
    ):
        line = fails(argv, capsys)
        assert f"the checkpoints folder {root} ($SLEEPCORE_CHECKPOINTS) {says}" in line, (argv, line)
    assert md.read_text() == "the real results" and not (tmp_path / "figs").exists()


def test_figures_refuse_an_empty_out_path(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fails(["figures", "--format", "svg", "--out", ""], capsys).endswith("--out is empty; give a folder path")
    assert list(tmp_path.iterdir()) == []


def test_ship_refuses_a_path_that_is_no_run_and_names_none(capsys, tmp_path):
    line = fails(["ship", str(tmp_path / "nowhere"), "--name", "x"], capsys)
    assert line.endswith("nowhere is not a training run (no config.json there); give the --out folder of a run")
    assert "shipped checkpoints" not in line, "a path, not a name to look up among the shipped ones"


def test_the_results_name_the_command_that_wrote_them(monkeypatch, tmp_path):
    from sleepcore import results

    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)  # the repository's checkpoints/: no prefix
    assert results.command(9, 1) == "sleepcore eval --all --examples 9 --seed 1"
    assert results.command(9, 1, "my dir/R.md") == "sleepcore eval --all --examples 9 --seed 1 --markdown 'my dir/R.md'"
    assert results.results_command() == results.SHIPPED_COMMAND, "the app's hint is the shipped tables' command"
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    assert results.command(9, 1) == f"SLEEPCORE_CHECKPOINTS={tmp_path} sleepcore eval --all --examples 9 --seed 1"
    assert results.results_command().endswith(
        f"--markdown {tmp_path}/RESULTS.md --results-json {tmp_path}/RESULTS.json"
    )


# --- 6. what a new user's bad input found (an audit, 2026-12-05) ---------------------------------------------------

READERS = [  # the commands that run a checkpoint's weights on its task (CKPT, OUT: filled in by _argv)
    ["eval", "CKPT", "--examples", "1"],
    ["sweep", "CKPT", "--examples", "1", "--no-progress"],
    ["trace", "CKPT", "--out", "OUT"],
    ["probe", "CKPT", "--no-progress"],
]


def _argv(command: list[str], ckpt: Path, tmp_path: Path) -> list[str]:
    return [str(ckpt) if a == "CKPT" else str(tmp_path / "o") if a == "OUT" else a for a in command]


@pytest.mark.parametrize(
    "command",
    READERS,
)
def test_the_task_itself_cannot_be_set_only_its_settings(app_checkpoints, tmp_path, capsys, nothing_computes, command):  # noqa: F811
    line = fails([*_argv(command, app_checkpoints / "tiny-n2", tmp_path), "--set", "task.name=depo"], capsys)
    assert line.endswith(
        "--set task.name: the weights fix the task they were trained on; --set task.KEY changes its settings"
    )


def test_train_refuses_another_task_by_set_and_names_the_presets(tmp_path, capsys, nothing_computes):
    line = fails(["train", "--preset", "tiny", "--set", "task.name=gsm", "--out", str(tmp_path / "o")], capsys)
    assert "task.name cannot be set: preset 'tiny' fixes its task (rule110)" in line and "gsm-chain-1w-c9" in line


@pytest.mark.parametrize(
    "setting, says",
    [
        ("train.lr=Infinity", "train.lr must be a finite number; got inf"),
        ("train.lr=NaN", "train.lr must be a finite number; got nan"),
        ("model.mlp_ratio=NaN", "model.mlp_ratio must be a finite number; got nan"),
        ("train.clip=-1", "clip (the gradients' largest norm) must be > 0; got -1"),
        ("train.min_lr_ratio=-0.5", "min_lr_ratio (the cosine's end, a fraction of lr) must be in [0, 1]; got -0.5"),
        ("train.weight_decay=-1", "weight_decay must be >= 0; got -1"),
        ("train.warmup=-3", "warmup must be >= 0 (steps); got -3"),
        ("train.curriculum_start=-1", "curriculum_start must be >= 0 (steps); got -1"),
    ],
)
def test_training_settings_that_would_train_wrongly_are_refused(tmp_path, capsys, nothing_computes, setting, says):
    assert says in fails(["train", "--preset", "tiny", "--set", setting, "--out", str(tmp_path / "o")], capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "command, says",
    [
        (["eval", "CKPT", "--examples", "20001"], "must be at most 20,000 (the shipped results use 1,000); got 20,001"),
        (["sweep", "CKPT", "--examples", "20001", "--no-progress"], "must be at most 20,000"),
        (["probe", "CKPT", "--examples", "16385", "--no-progress"], "--examples must be at most 16,384"),
        (["attribute", "CKPT", "-K", "1025", "--no-progress"], "examples must be from 1 to 1024"),
        (["trace", "CKPT", "-K", "1025", "--out", "OUT"], "examples must be at most 1024; got 1025"),
    ],
)
def test_an_example_count_past_its_cap_is_refused_at_once(app_checkpoints, tmp_path, capsys, command, says):  # noqa: F811
    assert says in fails(_argv(command, app_checkpoints / "tiny-n2", tmp_path), capsys)
    assert not (tmp_path / "o").exists()


def _damaged(app_checkpoints, tmp_path, change) -> Path:  # noqa: F811
    import json
    import shutil

    ckpt = tmp_path / "damaged"
    shutil.copytree(app_checkpoints / "tiny-n2", ckpt)
    info = json.loads((ckpt / "config.json").read_text())
    change(info)
    (ckpt / "config.json").write_text(json.dumps(info))
    return ckpt


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda i: i.pop("sleep"), "config.json has no 'sleep' section; it needs model, sleep, task and train"),
        (lambda i: i.pop("task"), "config.json has no 'task' section"),
        (lambda i: i.update(sleep=[1]), "config.json is not valid: SleepConfig must be a JSON object; got list"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [*READERS, ["probe", "CKPT", "--no-progress", "--set", "task.W=12"]],
)
def test_a_damaged_config_is_told_by_every_command_not_a_key_error(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    change,
    says,
    command,
):
    ckpt = _damaged(app_checkpoints, tmp_path, change)
    assert says in fails(_argv(command, ckpt, tmp_path), capsys)


def test_a_setting_a_config_lacks_is_its_default_everywhere(app_checkpoints, tmp_path):  # noqa: F811
    """An older (or hand-edited) config.json without train.seed and sleep.loop: they take their defaults (0, and
    "sleep") in the model and in every command that reads the config (read checked, not raw: a KeyError before)."""
    from sleepcore.checkpoint import load_checkpoint
    from sleepcore.results import evaluate_checkpoint, sweep_checkpoint

    def drop(info):
        info["train"].pop("seed"), info["sleep"].pop("loop")

    ckpt = _damaged(app_checkpoints, tmp_path, drop)
    model, info = load_checkpoint(ckpt)
    assert info["train"]["seed"] == 0 and info["sleep"]["loop"] == model.sleep.loop == "sleep"
    assert evaluate_checkpoint(ckpt, per_depth=1, seed=0)["passes"] == 2
    assert {r["train_seed"] for r in sweep_checkpoint(ckpt, [1], per_depth=1)} == {0}


@pytest.mark.parametrize(
    "damage, says",
    [
        (
            lambda t: {**t, "blocks.0.mlp.up.weight": t["blocks.0.mlp.up.weight"].half()},
            "wrong dtypes: blocks.0.mlp.up.weight: torch.float16 but",
        ),
        (
            lambda t: {k: v.fill_(float("nan")) if k == "blocks.0.mlp.up.weight" else v for k, v in t.items()},
            "holds NaN or infinite values in ['blocks.0.mlp.up.weight']: these weights cannot be run (a training",
        ),
    ],
)
def test_weights_of_another_dtype_or_not_finite_are_refused(app_checkpoints, tmp_path, capsys, damage, says):  # noqa: F811
    import shutil

    from safetensors.torch import load_file, save_file

    ckpt = tmp_path / "w"
    shutil.copytree(app_checkpoints / "tiny-n2", ckpt)
    save_file(damage(load_file(ckpt / "model.safetensors")), ckpt / "model.safetensors")
    line = fails(["eval", str(ckpt), "--examples", "1"], capsys)
    assert says in line and ("does not match its config.json" in line) == ("dtypes" in says), line


def test_a_resume_past_the_runs_last_step_is_refused(tmp_path, capsys):
    import json

    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--max-steps", "5", "--out", str(out), "--no-progress"]
    assert main([*args, "--stop-after", "2"]) == 0
    trainer = json.loads((out / "trainer.json").read_text())
    (out / "trainer.json").write_text(json.dumps({**trainer, "step": 1000}))  # edited: its files still match
    capsys.readouterr()
    line = fails([*args, "--resume"], capsys)
    assert "trainer.json is at step 1000, past this run's last step (5)" in line


def test_figures_say_when_results_json_is_damaged(app_checkpoints, tmp_path, capsys, monkeypatch):  # noqa: F811
    import shutil

    root = tmp_path / "root"
    shutil.copytree(app_checkpoints, root)
    (root / "RESULTS.json").write_text('{"x":')
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(root))
    assert main(["figures", "--format", "svg", "--out", str(tmp_path / "f"), "--checkpoints", "tiny-n2"]) == 0
    err = capsys.readouterr().err
    assert (
        "RESULTS.json cannot be read as JSON" in err
        and "showing each checkpoint's own stored evaluation instead" in err
    )


def test_the_app_refuses_an_address_it_cannot_serve_on(capsys):
    import socket

    line = fails(["app", "--host", "nosuch.invalid", "--port", "8778"], capsys)
    assert "--host 'nosuch.invalid' is not an address this machine can serve on" in line
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        line = fails(["app", "--port", str(port)], capsys)
    assert line.endswith(f"port {port} is in use on 127.0.0.1: another server holds it; give another --port")


def test_a_mistyped_checkpoint_name_is_answered_with_the_nearest_names(tmp_path, monkeypatch, capsys):
    for name in ("depo-k4-n4", "depo-k4-n2", "rule110-mini-n4"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "model.safetensors").write_bytes(b"")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    line = fails(["eval", "depo-k4-n5", "--examples", "1"], capsys)
    assert "no checkpoint at 'depo-k4-n5'" in line and "; did you mean depo-k4-n4 or depo-k4-n2" in line
    assert "did you mean" not in fails(["eval", "nothing-like-it", "--examples", "1"], capsys)


@pytest.mark.parametrize("command", [["eval", "CKPT", "--examples", "1"], ["trace", "CKPT", "--out", "OUT"]])
@pytest.mark.parametrize("threads", ["0", "100000"])
def test_eval_and_trace_refuse_a_thread_count_the_machine_lacks(
    app_checkpoints,  # noqa: F811
    tmp_path,
    capsys,
    nothing_computes,
    command,
    threads,
):
    says = fails([*_argv(command, app_checkpoints / "tiny-n2", tmp_path), "--threads", threads], capsys)
    assert "--threads must be 1 to " in says and f"(this machine's cores); got {threads}" in says
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "command", [["eval", "CKPT", "--examples", "2", "--no-progress"], ["trace", "CKPT", "--out", "OUT"]]
)
def test_eval_and_trace_run_on_the_threads_asked_for(app_checkpoints, tmp_path, capsys, command):  # noqa: F811
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # so that running on 1 is seen to be the flag's doing
    try:
        assert main([*_argv(command, app_checkpoints / "tiny-n2", tmp_path), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
