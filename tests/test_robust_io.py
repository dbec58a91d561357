"""Bad files and bad output paths get one clear message naming the file, and nothing on disk is lost: config.json
that is not UTF-8, a trace written over someone's folder, a figure set from a damaged checkpoint, checkpoint names
under $SLEEPCORE_CHECKPOINTS, trace folders whose files were swapped."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from sleepcore import checkpoint
from sleepcore.checkpoint import CHECKPOINT_ROOT, CheckpointError, checkpoint_info, read_info, resolve
from sleepcore.cli import main
from sleepcore.model import SleepModel
from sleepcore.presets import build
from sleepcore.results import SWEEP_FILE, read_sweep, sweep_checkpoint
from sleepcore.tasks import get_task
from sleepcore.trace import (
    WRITING,
    TraceError,
    check_trace_out,
    load_trace,
    record_trace,
    sample_examples,
    write_trace,
)
from sleepcore.train import train

NOT_UTF8 = b"\xfd\x8e\x01{\x00garbage"  # 0xfd can start no UTF-8 character


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A checkpoints folder holding `good`: a tiny N = 2 model (2 steps) with a sweep.parquet beside it."""
    from analysis.figures import results_table

    root = tmp_path_factory.mktemp("ckroot")
    good = root / "good"
    configs = build("tiny", 2, steps=2, eval_every=2, save_every=2, eval_examples=8)
    train(good, *configs, progress=False, eval_per_depth=2, extra={"preset": "tiny", "variant": "hybrid"})
    results_table(sweep_checkpoint(good, [1, 2], per_depth=1, seed=5)).write_parquet(good / SWEEP_FILE)
    return root


@pytest.fixture
def copy(root, tmp_path):
    """A checkpoints folder of its own for one test, holding a copy of `good`."""
    shutil.copytree(root / "good", tmp_path / "ckroot" / "good")
    return tmp_path / "ckroot"


def tiny_trace(k=2, passes=2, variant="hybrid"):
    configs = build("tiny", passes, variant)
    torch.manual_seed(0)
    model = SleepModel(configs[0], configs[1]).eval()
    task = get_task(configs[2].name, **configs[2].params)
    return record_trace(model, checkpoint_info(*configs), sample_examples(task, k, seed=0), checkpoint="t", seed=0)


@pytest.fixture(scope="module")
def trace():
    return tiny_trace()


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- 1. JSON files that are not UTF-8 ------------------------------------------------------------------------
def test_a_config_that_is_not_utf8_is_one_line_naming_the_file(copy, capsys):
    folder = copy / "good"
    (folder / "config.json").write_bytes(NOT_UTF8)
    assert main(["eval", str(folder), "--examples", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{folder / 'config.json'} is not valid JSON: it is not UTF-8 text" in err
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON: it is not UTF-8 text \(byte 0xfd"):
        read_info(folder)


def test_other_json_files_that_are_not_utf8_say_so_and_name_the_file(tmp_path):
    from sleepcore.checkpoint import read_trainer
    from sleepcore.results import read_results_json

    for name in ("trainer.json", "RESULTS.json"):
        (tmp_path / name).write_bytes(NOT_UTF8)
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'trainer.json'} is not valid JSON: it is not UTF-8"):
        read_trainer(tmp_path / "trainer.json")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'RESULTS.json'} cannot be read as JSON: it is not UTF-8"):
        read_results_json(tmp_path / "RESULTS.json")


# --- 2. where a trace may be written -------------------------------------------------------------------------
def test_a_trace_is_not_written_over_someone_elses_folder(trace, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "meta.json").write_text('{"mine": 1}')
    with pytest.raises(TraceError, match=r"other: it is a folder that is not a trace \(it holds meta.json; its meta"):
        write_trace(trace, other)
    assert listing(other) == {"meta.json": b'{"mine": 1}'}  # untouched, nothing added


def test_a_trace_is_not_written_into_a_checkpoint(trace, copy):
    folder = copy / "good"
    before = listing(folder)
    with pytest.raises(TraceError, match=r"good: it is a checkpoint folder \(it holds .*config.json"):
        write_trace(trace, folder)
    assert listing(folder) == before


def test_an_empty_out_path_is_refused_not_the_current_folder(trace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        with pytest.raises(TraceError, match="the trace folder is an empty path; give a folder"):
            check_trace_out(empty)
        with pytest.raises(TraceError, match="empty path"):
            write_trace(trace, empty)
    assert list(tmp_path.iterdir()) == []


def test_loading_an_empty_trace_path_says_so_not_the_current_folder(tmp_path, monkeypatch):
    from sleepcore.trace import load_trace

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TraceError, match=r"^no trace folder given \(an empty path\)"):
        load_trace("")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_trace_folder_where_no_file_can_be_made_is_refused_even_for_root(trace):
    """/proc passes os.access for root; the check makes a real file, as the trace's own writes would."""
    with pytest.raises(TraceError, match=r"^the trace folder /proc/t: no file can be made in the folder /proc"):
        check_trace_out("/proc/t")
    with pytest.raises(TraceError, match="no file can be made in the folder /proc"):
        write_trace(trace, "/proc/t")


def test_a_trace_folder_a_new_one_and_a_cut_short_one_may_be_written(trace, tmp_path):
    assert check_trace_out(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    written = tmp_path / "t"
    write_trace(trace, written)
    first = listing(written)
    assert WRITING not in first and "meta.json" in first
    write_trace(tiny_trace(k=3), written)  # a trace is replaced by another
    assert load_trace(written).meta["examples"] == 3
    (written / "meta.json").unlink()  # as a write cut short leaves it: its marker, no meta.json
    (written / WRITING).write_text('{"format": 1, "writing": "a sleepcore trace"}')
    write_trace(trace, written)
    assert listing(written) == first


def test_the_trace_command_refuses_a_folder_that_is_not_a_trace(root, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "meta.json").write_text('{"mine": 1}')
    assert main(["trace", str(root / "good"), "-K", "1", "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sleepcore trace: error: cannot write a trace to") and err.count("\n") == 1
    assert listing(other) == {"meta.json": b'{"mine": 1}'}


# --- 3. the figure set: every input checked first; damaged weights blamed, real paths in the hints -------------
def test_damaged_weights_are_blamed_not_the_sweep_computed_from_them(copy, monkeypatch):
    from analysis import figure_set

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(copy))
    weights = copy / "good" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    for read in (lambda: read_sweep(copy / "good"), lambda: list(figure_set.checkpoint_figures("good"))):
        with pytest.raises(CheckpointError, match=rf"{weights} cannot be read as safetensors") as e:
            read()
        assert "other weights" not in str(e.value)


@pytest.mark.parametrize("damage", ["config", "weights", "sweep"])
def test_the_figure_set_checks_every_checkpoint_before_it_draws_anything(root, copy, monkeypatch, damage):
    from analysis import figure_set

    shutil.copytree(root / "good", copy / "z-bad")
    bad = copy / "z-bad"
    if damage == "config":
        (bad / "config.json").write_bytes(NOT_UTF8)
    elif damage == "weights":
        (bad / "model.safetensors").write_bytes((bad / "model.safetensors").read_bytes()[:-10])
    else:
        (bad / SWEEP_FILE).write_bytes(b"PAR1 damaged")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(copy))
    drawn = []
    monkeypatch.setattr(figure_set, "headline_figures", lambda names: drawn.append(names) or iter(()))
    with pytest.raises(ValueError, match="z-bad") as e:
        figure_set.all_figures(["good", "z-bad"])
    assert drawn == []  # nothing drawn, so nothing for the command to write
    says = {"config": "config.json is not valid JSON", "weights": "model.safetensors", "sweep": "sweep.parquet"}
    assert says[damage] in str(e.value)


def test_the_figure_set_draws_every_figure_of_good_checkpoints(copy, monkeypatch):
    from analysis import figure_set

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(copy))
    stems = [stem for stem, _ in figure_set.all_figures(["good"])]
    assert stems[0] == "tiny-accuracy-vs-passes"
    assert {"good-test-time-passes", "good-state", "good-anytime", "good-attribution"} <= set(stems)


def test_a_stale_sweeps_hint_gives_its_real_path(copy, monkeypatch, tmp_path):
    import polars as pl

    sweep = copy / "good" / SWEEP_FILE
    pl.read_parquet(sweep).with_columns(weights_sha256=pl.lit("0" * 64)).write_parquet(sweep)
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(copy))  # the name resolves to this folder: named
    with pytest.raises(ValueError, match="other weights") as e:
        read_sweep(copy / "good")
    assert f"write it again with: sleepcore sweep good --out {sweep}" in str(e.value)
    assert "checkpoints/good" not in str(e.value)
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS")  # a folder no name leads to: by its path
    with pytest.raises(ValueError, match="other weights") as e:
        read_sweep(copy / "good")
    assert f"write it again with: sleepcore sweep {copy / 'good'} --out {sweep}" in str(e.value)


# --- 4. checkpoint names: one root for every command, the figure set and the app ------------------------------
def test_names_resolve_under_sleepcore_checkpoints_as_the_app_sees_them(copy, monkeypatch, capsys):
    from analysis import session

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(copy))
    assert checkpoint.checkpoint_root() == copy
    assert resolve("good") == copy / "good"
    for name in session.checkpoint_names():
        assert resolve(name) == session.checkpoint_root() / name
    assert main(["eval", "good", "--examples", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == "good"
    with pytest.raises(CheckpointError, match=rf"checkpoints in \$SLEEPCORE_CHECKPOINTS \({copy}\): good; shipped"):
        resolve("nowhere")


def test_the_root_is_read_at_each_call_and_defaults_to_the_repositorys(copy, monkeypatch):
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)
    assert checkpoint.checkpoint_root() == CHECKPOINT_ROOT
    monkeypatch.setattr(checkpoint, "CHECKPOINT_ROOT", copy)  # as the tests of continued runs do
    assert checkpoint.checkpoint_root() == copy and resolve("good") == copy / "good"
    assert checkpoint.available() == ["good"]


def test_a_name_is_one_folder_name_not_a_path_out_of_the_root(copy, monkeypatch, tmp_path):
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(copy / "sub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at '../good'"):
        resolve("../good")
    with pytest.raises(CheckpointError, match="no checkpoint given"):
        resolve("")


# --- 5. what a trace folder holds, and what a trace does not ---------------------------------------------------
@pytest.fixture
def written(trace, tmp_path):
    write_trace(trace, tmp_path / "t")
    return tmp_path / "t"


def test_a_trace_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(TraceError, match=rf"no trace at {tmp_path / 'nope'}: it does not exist"):
        load_trace(tmp_path / "nope")


def test_swapped_tables_with_matching_hashes_are_refused(written):
    meta = json.loads((written / "meta.json").read_text())
    a, b = (written / "state.parquet").read_bytes(), (written / "hidden.parquet").read_bytes()
    (written / "state.parquet").write_bytes(b)
    (written / "hidden.parquet").write_bytes(a)
    files = meta["files"]
    files["state.parquet"], files["hidden.parquet"] = files["hidden.parquet"], files["state.parquet"]
    (written / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TraceError, match=r"state\.parquet is not a trace's state table \(missing columns \['head'"):
        load_trace(written)


def test_tensors_of_another_trace_are_refused(written, tmp_path):
    other = tmp_path / "other"
    write_trace(tiny_trace(k=3), other)
    data = (other / "tensors.safetensors").read_bytes()
    (written / "tensors.safetensors").write_bytes(data)
    meta = json.loads((written / "meta.json").read_text())
    meta["files"]["tensors.safetensors"] = hashlib.sha256(data).hexdigest()
    (written / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TraceError, match="meta.json says 2 examples, but the first dimension of"):
        load_trace(written)


@pytest.mark.parametrize(
    "edit, says",
    [
        (lambda m: m.pop("windows"), "lacks windows; a trace meta.json holds checkpoint, task"),
        (lambda m: m.update(passes="4"), 'passes must be an integer >= 1; got "4"'),
        (lambda m: m.update(windows=[{"index": 0}]), "windows must be a list of {index, start, end, kind"),
    ],
)
def test_a_meta_json_without_what_a_trace_needs_is_refused(written, edit, says):
    meta = json.loads((written / "meta.json").read_text())
    edit(meta)
    (written / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TraceError, match="meta.json") as e:
        load_trace(written)
    assert says in str(e.value)


def test_asking_a_trace_for_what_it_does_not_hold_lists_what_it_does(trace):
    with pytest.raises(KeyError) as e:
        trace.state(7, 1, 1)
    assert str(e.value) == (
        "'window.7/pass.1/layer.1/fw.state' is not in this trace: window 7 is not one of its windows. Its "
        "fast-weight state: windows 0, 1 (window 0: pass 1, 2; window 1: pass 1), fw layers 1"
    )
    with pytest.raises(KeyError, match="window 1 has pass 1 only"):
        trace.state(1, 2, 1)
    with pytest.raises(KeyError, match="layer 0 is not one of its fw layers"):
        trace.state(0, 1, 0)
    with pytest.raises(KeyError, match=r"layer 1 is not one of its attn layers\. Its attention .* attn layers 0$"):
        trace.attn(0, 1, 1)
    with pytest.raises(
        KeyError, match="'window.0/logits' is not in this trace: it holds the logits of the wake windows 1"
    ):
        trace.logits(0)


# --- 6. the schema says which passes a window holds --------------------------------------------------------------
def test_wake_loop_windows_hold_the_passes_the_schema_says():
    t = tiny_trace(passes=3, variant="wake-loop")
    held = {}
    for name in t.tensors:
        if name.endswith("fw.state"):
            w, p = (int(part.split(".")[1]) for part in name.split("/")[:2])
            held.setdefault(w, set()).add(p)
    kinds = {w["index"]: w["kind"] for w in t.meta["windows"]}
    assert {kinds[w]: sorted(ps) for w, ps in held.items()} == {"context": [1], "wake": [1, 2, 3]}
    schema = (Path(__file__).resolve().parents[1] / "docs" / "TRACE_SCHEMA.md").read_text()
    assert "Wake windows have one pass, `pass.1`." not in schema
    assert "wake windows hold `pass.1`..`pass.N` and context windows `pass.1` only" in schema


def test_a_folder_holding_only_dotfiles_takes_a_trace(tmp_path):
    """.DS_Store, or a temporary file a killed write left: nobody's files to overwrite."""
    (folder := tmp_path / "t").mkdir()
    (folder / ".DS_Store").write_bytes(b"")
    (folder / ".meta.json.abc123").write_text("{")
    assert check_trace_out(folder) == folder
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(TraceError, match=r"it holds notes.txt; no trace meta.json"):
        check_trace_out(folder)
