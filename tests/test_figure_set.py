"""`sleepcore figures` regenerates the figure set from checkpoints and exports it through kaleido."""

import os
import re
import shutil
import xml.etree.ElementTree as ET

import polars as pl
import pytest
from app_fixtures import app_checkpoints  # noqa: F401

from analysis.figure_set import checkpoint_figures, headline_figures
from sleepcore.cli import main


def test_figure_set_covers_every_view(app_checkpoints):  # noqa: F811
    stems = [stem for stem, _ in headline_figures(["tiny-n1", "tiny-n2"])]
    assert stems == ["tiny-accuracy-vs-passes", "tiny-exact-vs-passes"]  # one figure per preset and count
    gsm = dict(headline_figures(["tiny-gsm-n2"]))  # gsm's headline count is the question alone
    assert list(gsm) == ["gsm-mini-accuracy-vs-passes", "gsm-mini-effective-vs-passes"]
    assert gsm["gsm-mini-effective-vs-passes"].layout.title.text == (
        "gsm-mini: accuracy vs N, operations, the question alone"
    )
    figs = dict(checkpoint_figures("tiny-n2"))
    assert set(figs) == {f"tiny-n2-{s}" for s in ("state", "state-across-sleep", "attention", "anytime", "attribution")}
    assert len(figs["tiny-n2-anytime"].data[-1].x) == 2  # the readout after n = 1 and n = 2 passes


def test_figures_command_writes_parseable_files(app_checkpoints, tmp_path, capsys):  # noqa: F811
    if not shutil.which("chromium") and not os.path.exists("/usr/bin/chromium"):
        if os.environ.get("CI"):
            pytest.fail("CI must export figures: chromium is missing")
        pytest.skip("chromium is missing: figure export needs it (apt-get install chromium)")
    assert main(["figures", "--out", str(tmp_path), "--format", "svg", "--checkpoints", "tiny-n2"]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "tiny-n2-state.svg" in files and "tiny-accuracy-vs-passes.svg" in files
    for f in tmp_path.iterdir():
        ET.parse(f)  # every SVG is well-formed XML


def test_figures_command_rejects_bad_arguments(app_checkpoints, capsys):  # noqa: F811
    assert main(["figures", "--format", "gif"]) == 2
    assert "unknown format(s) ['gif']" in capsys.readouterr().err
    assert main(["figures", "--checkpoints", "nope"]) == 2
    assert "unknown checkpoint(s) ['nope']" in capsys.readouterr().err


def test_headline_figures_keep_presets_of_one_task_apart(monkeypatch, tmp_path):
    """depo-k4-n1 and depo-mini-n1 are both Depo at N = 1: one figure each, not one figure with two N = 1 lines."""
    from analysis import figure_set

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))  # no RESULTS.json: the configs' evaluations

    def info(preset: str, passes: int, depths: tuple[int, ...]) -> dict:
        cell = {"acc": 0.5, "lo": 0.4, "hi": 0.6, "correct": 50, "n": 100}
        ev = {"answers": {str(d): cell for d in depths}, "exact": {}}
        return {
            "preset": preset,
            "variant": "hybrid",
            "task": {"name": "depo"},
            "sleep": {"passes": passes},
            "eval": ev,
        }

    infos = {
        "depo-k4-n1": info("depo-k4", 1, (1, 2, 3, 4)),
        "depo-k4-n4": info("depo-k4", 4, (1, 2, 3, 4)),
        "depo-mini-n1": info("depo-mini", 1, (1, 2, 3, 4, 6, 8)),
    }
    monkeypatch.setattr(figure_set.session, "checkpoint_info", infos.__getitem__)
    monkeypatch.setattr(figure_set.session, "_folder", lambda name: tmp_path / name)  # configs alone, no weights:
    monkeypatch.setattr(figure_set.session, "load_checkpoint", lambda folder: None)  # nothing to load
    figs = dict(headline_figures(list(infos)))
    assert list(figs) == ["depo-k4-accuracy-vs-passes", "depo-mini-accuracy-vs-passes"]
    assert sorted(t.name for t in figs["depo-k4-accuracy-vs-passes"].data if t.name) == [
        f"depth {d}" for d in (1, 2, 3, 4)
    ]


def test_figures_refuses_an_output_folder_that_is_a_file(app_checkpoints, tmp_path, capsys, monkeypatch):  # noqa: F811
    from analysis import figure_set

    monkeypatch.setattr(figure_set, "headline_figures", lambda names: pytest.fail("drawn before the check"))
    (tmp_path / "afile").write_text("")
    assert main(["figures", "--out", str(tmp_path / "afile"), "--checkpoints", "tiny-n1"]) == 2
    assert f"--out {tmp_path / 'afile'} is a file; give a folder path" in capsys.readouterr().err
    assert main(["figures", "--out", str(tmp_path / "afile" / "figs"), "--checkpoints", "tiny-n1"]) == 2
    assert f"{tmp_path / 'afile'} is a file, so no folder can be made below it" in capsys.readouterr().err


def test_a_failed_export_is_an_error_not_a_traceback(app_checkpoints, tmp_path, capsys, monkeypatch):  # noqa: F811
    from analysis import export

    rendered = []

    def no_browser_after_two(fig, fmt, scale=1.0):  # kaleido failing part-way through the set
        if len(rendered) == 2:
            raise export.ExportError("figure export needs Chromium; install it with apt-get install chromium")
        rendered.append(fmt)
        return b"<svg/>"

    monkeypatch.setattr(export, "figure_bytes", no_browser_after_two)
    monkeypatch.setattr(export, "find_browser", lambda: "/usr/bin/chromium")  # found: the failure comes later
    out = tmp_path / "figs"
    assert main(["figures", "--out", str(out), "--format", "svg", "--checkpoints", "tiny-n1"]) == 2
    assert capsys.readouterr().err.endswith(  # after the progress bar
        "\nsleepcore figures: error: figure export needs Chromium; install it with apt-get install chromium\n"
    )
    assert not out.exists(), "all or nothing: no file is written before every file is rendered"


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda p: p.write_bytes(b"PAR1 garbage"), "is not a readable Parquet table"),
        (lambda p: pl.DataFrame({"acc": [0.5]}).write_parquet(p), "missing columns ['checkpoint'"),
    ],
)
def test_a_damaged_probes_table_stops_the_figures_with_the_command_that_rewrites_it(
    app_checkpoints,  # noqa: F811
    tmp_path,
    monkeypatch,
    damage,
    says,
):
    shutil.copytree(app_checkpoints / "tiny-n2", tmp_path / "tiny-n2")
    damage(tmp_path / "tiny-n2" / "probes.parquet")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    with pytest.raises(
        ValueError,
        match=re.escape(f"write it again with: sleepcore probe tiny-n2 --out {tmp_path.absolute() / 'tiny-n2'}/"),
    ) as e:
        list(checkpoint_figures("tiny-n2"))
    assert says in str(e.value)
