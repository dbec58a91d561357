"""Training lowers the loss, resumes exactly, keeps data order fixed across N, and rejects bad settings."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sleepcore.checkpoint import CheckpointError, read_info
from sleepcore.cli import main
from sleepcore.presets import build
from sleepcore.tasks import get_task
from sleepcore.train import batch_at, curriculum_depth, lr_at, train


def tiny(steps=40, passes=2, **over):
    over = {"steps": steps, "eval_every": 20, "save_every": 10, "eval_examples": 32, **over}
    return build("tiny", passes, **over)


def test_smoke_training_lowers_the_loss(tmp_path):
    info = train(tmp_path, *tiny(steps=150, passes=1, eval_every=150), progress=False, eval_per_depth=8)
    hist = info["history"]
    assert info["finished"] and info["step"] == 150
    start = torch.log(torch.tensor(float(info["model"]["vocab_size"]))).item()
    assert hist[-1]["loss"] < 0.5 * start  # from ~ln(vocab) at initialisation
    assert set(info["eval"]["answers"]) == {str(d) for d in range(1, 9)}


def test_kill_and_resume_gives_the_same_weights(tmp_path):
    configs = tiny(steps=30, passes=2)
    train(tmp_path / "whole", *configs, progress=False, eval_per_depth=4)
    train(tmp_path / "broken", *configs, stop_after=17, progress=False, eval_per_depth=4)
    assert json.loads((tmp_path / "broken" / "config.json").read_text())["step"] == 17
    train(tmp_path / "broken", *configs, resume=True, progress=False, eval_per_depth=4)
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "broken" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_a_different_config(tmp_path):
    train(tmp_path, *tiny(steps=10), stop_after=5, progress=False)
    with pytest.raises(ValueError, match=r"the sleep config .* differs from this run's \(passes: 2 there, 3 here\)"):
        train(tmp_path, *tiny(steps=10, passes=3), resume=True, progress=False)
    with pytest.raises(ValueError, match=r"the train config .* differs .*\(steps: 10 there, 12 here\)"):
        train(tmp_path, *tiny(steps=12), resume=True, progress=False)


def test_resuming_a_finished_run_leaves_it_as_it_is(tmp_path, capsys):
    """A requeued job may resume a run that already finished: its record (wall time, evaluation) stays."""
    train(tmp_path, *tiny(steps=4), progress=False, eval_per_depth=4)
    before = _files(tmp_path)
    again = train(tmp_path, *tiny(steps=4), resume=True, progress=False, eval_per_depth=4)
    assert again == json.loads(before["config.json"])
    assert "finished at step 4: nothing to resume" in capsys.readouterr().out
    assert _files(tmp_path) == before
    with pytest.raises(ValueError, match=r"steps: 4 there, 8 here"):  # more steps: refused as any other change
        train(tmp_path, *tiny(steps=8), resume=True, progress=False)
    assert train(tmp_path, *tiny(steps=4), resume=True, stop_after=4, progress=False) == again  # a requeued job's
    assert train(tmp_path, *tiny(steps=4, threads=2), resume=True, progress=False) == again  # threads aside
    assert _files(tmp_path) == before


def test_a_run_resumes_with_another_thread_count(tmp_path):
    """Threads are the machine's business: a run saved with 2 resumes with 1 (a smaller machine) and finishes."""
    train(tmp_path, *tiny(steps=6, threads=2), stop_after=3, progress=False)
    info = train(tmp_path, *tiny(steps=6, threads=1), resume=True, progress=False, eval_per_depth=4)
    assert info["finished"] and info["step"] == 6 and info["train"]["threads"] == 1


def test_a_new_run_refuses_a_folder_whose_weights_it_would_overwrite(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")  # other files are left alone: a log, notes
    (tmp_path / "model.safetensors").write_bytes(b"someone's weights")
    with pytest.raises(CheckpointError, match=r"holds model.safetensors but no run .*: a new run would overwrite it"):
        train(tmp_path, *tiny(steps=2), progress=False)
    assert (tmp_path / "model.safetensors").read_bytes() == b"someone's weights"
    (tmp_path / "model.safetensors").unlink()
    assert train(tmp_path, *tiny(steps=2), progress=False, eval_per_depth=4)["finished"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_data_order_is_the_same_for_every_n():
    _, _, task_cfg, cfg = tiny(steps=100, passes=1, curriculum=True, curriculum_start=10, curriculum_every=5)
    _, _, _, cfg4 = tiny(steps=100, passes=4, curriculum=True, curriculum_start=10, curriculum_every=5)
    task = get_task(task_cfg.name, **task_cfg.params)
    for step in (0, 11, 57):
        assert [e.tokens for e in batch_at(step, cfg, task)] == [e.tokens for e in batch_at(step, cfg4, task)]
    assert curriculum_depth(0, cfg, task) == 1 and curriculum_depth(10, cfg, task) == 2
    assert curriculum_depth(99, cfg, task) == task.max_depth
    assert max(max(e.depth) for e in batch_at(12, cfg, task)) <= 2


def test_learning_rate_schedule():
    cfg = tiny(steps=1000, warmup=100)[3]
    assert lr_at(0, cfg) == pytest.approx(cfg.lr / 100)
    assert lr_at(99, cfg) == pytest.approx(cfg.lr)
    assert lr_at(999, cfg) == pytest.approx(cfg.lr * cfg.min_lr_ratio, rel=1e-3)


def test_cli_errors_are_clear(capsys):
    assert main(["train", "--preset", "nope", "--out", "x"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--passes", "0", "--out", "x"]) == 2
    assert "--passes must be >= 1" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--variant", "huge", "--out", "x"]) == 2
    assert "unknown variant" in capsys.readouterr().err


def test_code_version_is_the_one_training_started_from(tmp_path, monkeypatch):
    import sleepcore.train as tr

    monkeypatch.setattr(tr, "code_version", lambda: "abc123")
    train(tmp_path, *tiny(steps=6), stop_after=3, progress=False)
    monkeypatch.setattr(tr, "code_version", lambda: "def456-dirty")  # the code changed before the resume
    info = train(tmp_path, *tiny(steps=6), resume=True, progress=False, eval_per_depth=2)
    assert info["training"]["code_version"] == "abc123"


def test_set_overrides_any_setting_and_is_saved_in_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--max-steps", "4", "--out", str(out), "--no-progress"]
    sets = ["--set", "model.conv_size=3", "--set", "train.lr=1", "--set", "task.W=12", "--set", "sleep.feed=mix"]
    assert main(argv + sets) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["model"]["conv_size"] == 3 and info["train"]["lr"] == 1.0 and info["sleep"]["feed"] == "mix"
    assert info["task"]["params"]["W"] == 12 and info["model"]["max_positions"] == 13  # the window follows the task
    assert "--set model.conv_size=3 --set train.lr=1 --set task.W=12" in info["command"]
    configs = build("tiny", 1, overrides={"task": {"W": 12}, "model": {"conv_size": 3}, "train": {"lr": 1}}, steps=4)
    assert info["model"] == json.loads(json.dumps(configs[0].__dict__))


@pytest.mark.parametrize(
    "setting, message",
    [
        ("model.conv=3", r"unknown model setting\(s\) \['conv'\]; valid: vocab_size, d_model"),
        ("task.rows=2", r"unknown parameter\(s\) rows for task 'rule110'; valid parameters: W"),
        ("train.lr=fast", r"train.lr must be float, like 0.003; got 'fast'"),
        ("lr=1", r"--set 'lr=1': expected SECTION.KEY=VALUE with SECTION one of model, sleep, task, train"),
        ("optim.lr=1", "expected SECTION.KEY=VALUE"),
        ("train.lr", "expected SECTION.KEY=VALUE"),
    ],
)
def test_set_rejects_what_it_cannot_apply(setting, message, tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--set", setting, "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("sleepcore train: error: ")
    with pytest.raises(ValueError, match=message):
        from sleepcore.cli import parse_settings

        build("tiny", 1, overrides=parse_settings([setting]))


def _ship_tiny(root, name, passes=2, steps=12):
    """Train a tiny model into checkpoints-like folder root/name; its weights."""
    train(root / name, *tiny(steps=steps, passes=passes), progress=False, eval_per_depth=4)
    return load_file(root / name / "model.safetensors")


def test_a_continued_run_starts_from_its_base_and_draws_unseen_batches(tmp_path, monkeypatch):
    from sleepcore import checkpoint

    monkeypatch.setattr(checkpoint, "CHECKPOINT_ROOT", tmp_path / "shipped")
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)  # names are looked up there first
    base = _ship_tiny(tmp_path / "shipped", "tiny-n2")
    # a learning rate so small that one step cannot move a weight: the run holds its base's weights
    configs = tiny(steps=1, passes=2, init_from="tiny-n2", data_offset=12, lr=1e-30)
    info = train(tmp_path / "cont", *configs, progress=False, eval_per_depth=4)
    after = load_file(tmp_path / "cont" / "model.safetensors")
    for k in base:
        assert torch.allclose(after[k], base[k], rtol=0, atol=1e-20), k
    digest = __import__("hashlib").sha256((tmp_path / "shipped/tiny-n2/model.safetensors").read_bytes()).hexdigest()
    assert info["continued_from"]["name"] == "tiny-n2" and info["continued_from"]["sha256"] == digest
    assert info["continued_from"]["step"] == 12 and info["train"]["init_from"] == "tiny-n2"
    # batch s of the continuation is batch data_offset + s of the base run, whose curriculum it also reads
    _, _, task_cfg, cfg = configs
    task, plain = get_task(task_cfg.name, **task_cfg.params), tiny(steps=40, passes=2)[3]
    assert [e.tokens for e in batch_at(3, cfg, task)] == [e.tokens for e in batch_at(15, plain, task)]
    assert curriculum_depth(3, cfg, task) == curriculum_depth(15, plain, task)


def test_a_continued_run_resumes_to_the_weights_of_an_unbroken_one(tmp_path, monkeypatch):
    from sleepcore import checkpoint

    monkeypatch.setattr(checkpoint, "CHECKPOINT_ROOT", tmp_path / "shipped")
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)  # names are looked up there first
    _ship_tiny(tmp_path / "shipped", "tiny-n2")
    configs = tiny(steps=20, passes=2, init_from="tiny-n2", data_offset=12)
    whole = train(tmp_path / "whole", *configs, progress=False, eval_per_depth=4)
    train(tmp_path / "broken", *configs, stop_after=9, progress=False, eval_per_depth=4)
    shutil.rmtree(tmp_path / "shipped" / "tiny-n2")  # the base is replaced: the resumed run keeps its record
    _ship_tiny(tmp_path / "shipped", "tiny-n2", steps=5)
    broken = train(tmp_path / "broken", *configs, resume=True, progress=False, eval_per_depth=4)
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "broken" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert broken["continued_from"] == whole["continued_from"]


def test_a_continued_run_refuses_an_unknown_or_mismatched_base(tmp_path, monkeypatch):
    from sleepcore import checkpoint
    from sleepcore.checkpoint import CheckpointError

    monkeypatch.setattr(checkpoint, "CHECKPOINT_ROOT", tmp_path / "shipped")
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)  # names are looked up there first
    _ship_tiny(tmp_path / "shipped", "tiny-n2")
    with pytest.raises(
        CheckpointError, match=r"init_from: no checkpoint named 'tiny-n9' under .*; shipped checkpoints: tiny-n2"
    ):
        train(tmp_path / "a", *tiny(steps=2, init_from="tiny-n9"), progress=False)
    with pytest.raises(CheckpointError, match="tiny-n2's sleep config differs from this run's"):
        train(tmp_path / "b", *tiny(steps=2, passes=3, init_from="tiny-n2"), progress=False)
    for bad in ("../tiny-n2", "/etc", ".hidden"):
        with pytest.raises(ValueError, match="init_from must name a checkpoint under checkpoints/"):
            tiny(steps=2, init_from=bad)
    with pytest.raises(ValueError, match="data_offset must be an integer >= 0; got -1"):
        tiny(steps=2, data_offset=-1)


def test_a_continued_run_may_change_its_tasks_settings_and_its_card_says_which(tmp_path, monkeypatch):
    """A curriculum (gsm-chain-1w-c9 widens gsm-chain-1w-long's constants): the same model on a changed task. The
    change is recorded in config.json and told by the card; another task, or another model, is refused."""
    from sleepcore import cards, checkpoint
    from sleepcore.checkpoint import CheckpointError
    from sleepcore.config import TaskConfig
    from sleepcore.train import _base

    monkeypatch.setattr(checkpoint, "CHECKPOINT_ROOT", tmp_path / "shipped")
    monkeypatch.delenv("SLEEPCORE_CHECKPOINTS", raising=False)
    _ship_tiny(tmp_path / "shipped", "tiny-n2")
    overrides = {"task": {"min_depth": 3, "depths": [3, 4, 5, 6, 7, 8]}}
    configs = build("tiny", 2, overrides=overrides, steps=4, eval_every=4, save_every=4, init_from="tiny-n2")
    info = train(tmp_path / "cont", *configs, progress=False, eval_per_depth=4)
    changed = {"depths": [[1, 2, 3, 4, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8]], "min_depth": [1, 3]}
    assert info["continued_from"]["task_changed"] == changed
    assert json.loads((tmp_path / "cont" / "config.json").read_text())["continued_from"]["task_changed"] == changed
    assert set(info["eval"]["answers"]) == {"3", "4", "5", "6", "7", "8"}  # evaluated on its own task
    card = cards.ship(tmp_path / "cont", "tiny-c", root=tmp_path / "shipped")
    text = (card / "README.md").read_text()
    assert "of a changed task (depths [1, 2, 3, 4, 5, 6, 7, 8] → [3, 4, 5, 6, 7, 8], min_depth 1 → 3;" in text
    assert "same data stream" not in text
    assert "In all, with its base: 16 optimizer steps" in text  # tiny-n2's 12 and its own 4
    # a continuation of a continuation counts every base's steps, nearest first
    again = build("tiny", 2, overrides=overrides, steps=4, eval_every=4, save_every=4, init_from="tiny-c")
    train(tmp_path / "again", *again, progress=False, eval_per_depth=4)
    text = (cards.ship(tmp_path / "again", "tiny-c2", root=tmp_path / "shipped") / "README.md").read_text()
    assert "In all, with its bases (`tiny-c` ← `tiny-n2`): 20 optimizer steps" in text
    # the plain continuation's card keeps its wording
    plain = train(tmp_path / "plain", *tiny(steps=4, init_from="tiny-n2", data_offset=12), progress=False)
    assert "task_changed" not in plain["continued_from"]
    model_cfg, sleep_cfg, task_cfg, _ = configs
    other = TaskConfig(name="depo", params=task_cfg.params)
    with pytest.raises(CheckpointError, match="tiny-n2 was trained on task 'rule110', this run is 'depo'"):
        _base("tiny-n2", (model_cfg, sleep_cfg, other), torch.device("cpu"))
    narrower = TaskConfig(name="rule110", params={**tiny(steps=2)[2].params, "W": 12})  # model and sleep configs pass
    with pytest.raises(CheckpointError, match=r"tiny-n2's weights cannot continue on this run's task: W=12 changes"):
        _base("tiny-n2", (model_cfg, sleep_cfg, narrower), torch.device("cpu"))
    # a base re-shipped with other weights: the lineage stops at what the continuation recorded
    shutil.rmtree(tmp_path / "shipped" / "tiny-c")
    _ship_tiny(tmp_path / "shipped", "tiny-c", steps=5)
    text = cards.model_card("tiny-c2", read_info(tmp_path / "shipped" / "tiny-c2"))
    assert "In all, with its base: 8 optimizer steps" in text  # tiny-c's recorded 4 and its own 4
    wider = build("tiny", 2, overrides={"model": {"d_model": 48}}, steps=4, init_from="tiny-n2")
    with pytest.raises(CheckpointError, match=r"tiny-n2's model config differs from this run's \(d_model: 32 there"):
        train(tmp_path / "wider", *wider, progress=False)


def test_a_continued_run_and_ship_use_the_checkpoints_folder_names_come_from(tmp_path, monkeypatch):
    """With $SLEEPCORE_CHECKPOINTS set, init_from finds its base there (before the repository's checkpoints/), and
    `ship` writes there: the folder the app, eval --all and every name look in."""
    from sleepcore import cards, checkpoint

    monkeypatch.setattr(checkpoint, "CHECKPOINT_ROOT", tmp_path / "shipped")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path / "mine"))
    (tmp_path / "shipped").mkdir()
    base = _ship_tiny(tmp_path / "mine", "tiny-n2")
    info = train(tmp_path / "cont", *tiny(steps=1, passes=2, init_from="tiny-n2", lr=1e-30), progress=False)
    assert info["continued_from"]["sha256"] == checkpoint.weights_sha256(tmp_path / "mine" / "tiny-n2")
    assert cards.ship(tmp_path / "cont", "tiny-cont") == tmp_path / "mine" / "tiny-cont"
    assert checkpoint.available(tmp_path / "shipped") == [] and "tiny-cont" in checkpoint.available(tmp_path / "mine")
    shipped = load_file(checkpoint.resolve("tiny-cont") / "model.safetensors")
    assert all(torch.allclose(shipped[k], base[k], rtol=0, atol=1e-20) for k in base)


def test_a_continuing_preset_names_the_shipped_checkpoint_of_its_n_and_variant():
    assert build("rule110-long", 4)[3].init_from == "rule110-mini-n4"
    assert build("rule110-long", 1, "wide")[3].init_from == "rule110-mini-wide"
    assert build("rule110-long", 2)[3].data_offset == 12000 and build("rule110-mini", 2)[3].init_from is None
    assert build("rule110-long", 4)[:3] == build("rule110-mini", 4)[:3]  # the same model, sleep and task


def test_the_wake_loop_variant_moves_the_passes_and_keeps_the_model(tmp_path):
    from sleepcore.presets import shipped_name

    hybrid, wake = build("depo-k4", 4), build("depo-k4", 4, "wake-loop")
    assert wake[1].loop == "wake" and hybrid[1].loop == "sleep"
    assert wake[0] == hybrid[0] and wake[2:] == hybrid[2:]
    assert dataclasses.replace(wake[1], loop="sleep") == hybrid[1]
    assert shipped_name("depo-k4", 4, "wake-loop") == "depo-k4-wake-loop-n4"
    assert shipped_name("depo-k4", 4) == "depo-k4-n4" and shipped_name("depo-k4", 1, "wide") == "depo-k4-wide"
    assert shipped_name("depo-k4", 4, "wide") == "depo-k4-wide-n4", "a wide model at N = 4 is not the N = 1 control"
    with pytest.raises(
        ValueError, match="init_from: no checkpoint named 'rule110-mini-wide-n4' under .*shipped checkpoints: "
    ):
        train(tmp_path / "w", *build("rule110-long", 4, "wide", steps=1), progress=False)
    with pytest.raises(ValueError, match="unknown variant 'dream'; valid variants: .*wake-loop"):
        build("depo-k4", 4, "dream")


def test_a_saved_task_config_missing_a_later_parameter_reads_as_its_default():
    """Runs saved before a task parameter existed still resume and still match their preset."""
    from sleepcore.config import TaskConfig, from_dict

    full = build("gsm-mini", 1)[2]
    old = {k: v for k, v in full.params.items() if k != "max_constant"}
    assert from_dict(TaskConfig, {"name": "gsm", "params": old}) == full


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A tiny run (6 steps) stopped at step 2, and the same run stopped at step 4: files of two different steps."""
    root = tmp_path_factory.mktemp("stopped")
    for stop in (2, 4):
        train(root / f"at{stop}", *tiny(steps=6), stop_after=stop, progress=False)
    return root


@pytest.fixture
def run(stopped, tmp_path):
    """A copy of the run stopped at step 2, free to damage."""
    shutil.copytree(stopped / "at2", tmp_path / "run")
    return tmp_path / "run"


def test_train_refuses_to_overwrite_a_run_without_resume(run, capsys):
    before = _files(run)
    with pytest.raises(
        CheckpointError, match=r"already holds a run \(at step 2\); pass --resume to continue it, or give"
    ):
        train(run, *tiny(steps=6), progress=False)
    argv = ["train", "--preset", "tiny", "--passes", "2", "--max-steps", "6", "--out", str(run), "--no-progress"]
    assert main(argv) == 2
    assert "already holds a run (at step 2); pass --resume" in capsys.readouterr().err
    (run / "trainer.json").unlink()  # config.json alone (a checkpoint): never overwritten, and not resumable
    for resume in (False, True):
        with pytest.raises(
            CheckpointError, match=r"holds a checkpoint \(at step 2\) but no trainer.json, so it cannot"
        ):
            train(run, *tiny(steps=6), resume=resume, progress=False)
    del before["trainer.json"]
    assert _files(run) == before


@pytest.mark.parametrize(
    "mix, message",
    [
        ("model.safetensors", r"model.safetensors is not the file trainer.json was saved with at step 2"),
        ("optimizer.safetensors", r"optimizer.safetensors is not the file trainer.json was saved with at step 2"),
        ("config.json", r"config.json is at step 4 but trainer.json at step 2 \(a save was cut off part-way"),
    ],
)
def test_resume_refuses_files_saved_at_different_steps(stopped, run, mix, message):
    shutil.copy(stopped / "at4" / mix, run / mix)  # as a kill part-way through a save, or a file copied in, leaves it
    before = _files(run)
    with pytest.raises(CheckpointError, match=message):
        train(run, *tiny(steps=6), resume=True, progress=False)
    assert _files(run) == before


def _unbroken(stopped) -> dict[str, torch.Tensor]:
    """The weights of the tiny run trained to step 6 in one go."""
    folder = stopped / "unbroken"
    if not folder.exists():
        train(folder, *tiny(steps=6), progress=False)
    return load_file(folder / "model.safetensors")


def _assert_unbroken(stopped, run):
    a, b = _unbroken(stopped), load_file(run / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_save_cut_off_before_config_json_resumes_exactly(stopped, run, capsys):
    """Killed after trainer.json, before config.json: the files of step 4 belong together, config.json says 2."""
    for name in ("model.safetensors", "optimizer.safetensors", "trainer.json"):
        shutil.copy(stopped / "at4" / name, run / name)
    info = train(run, *tiny(steps=6), resume=True, stop_after=6, progress=False)
    assert "config.json is at step 2, one save behind trainer.json's 4" in capsys.readouterr().err
    assert info["step"] == 6 and read_info(run)["step"] == 6
    _assert_unbroken(stopped, run)  # it continued from step 4's files, as an unbroken run does


def test_a_save_leaves_no_next_files(stopped):
    assert sorted(p.name for p in (stopped / "at4").iterdir()) == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer.json",
    ]


@pytest.mark.parametrize("renamed", [(), ("model.safetensors",)])
def test_a_save_cut_off_after_trainer_json_resumes_from_its_next_files(stopped, run, renamed, capsys):
    """Killed after trainer.json committed step 4, before (or between) the renames: step 4's files are .next."""
    shutil.copy(stopped / "at4" / "trainer.json", run / "trainer.json")
    for name in ("model.safetensors", "optimizer.safetensors"):
        shutil.copy(stopped / "at4" / name, run / (name if name in renamed else f"{name}.next"))
    info = train(run, *tiny(steps=6), resume=True, stop_after=6, progress=False)
    err = capsys.readouterr().err
    assert "a save was cut off after" in err and "resuming from the .next files it recorded" in err
    assert info["step"] == 6 and not list(run.glob("*.next"))
    _assert_unbroken(stopped, run)


def test_a_first_save_cut_off_after_trainer_json_resumes(stopped, tmp_path, capsys):
    """Killed in the run's first save, after trainer.json: no config.json yet, step 2's files still .next."""
    run = tmp_path / "first"
    run.mkdir()
    shutil.copy(stopped / "at2" / "trainer.json", run / "trainer.json")
    for name in ("model.safetensors", "optimizer.safetensors"):
        shutil.copy(stopped / "at2" / name, run / f"{name}.next")
    with pytest.raises(CheckpointError, match=r"already holds a run \(at step 2\); pass --resume"):
        train(run, *tiny(steps=6), progress=False)
    info = train(run, *tiny(steps=6), resume=True, stop_after=6, progress=False)
    assert "config.json was not written yet by the save of trainer.json's 2" in capsys.readouterr().err
    assert info["step"] == 6 and read_info(run)["step"] == 6
    _assert_unbroken(stopped, run)


def test_a_save_after_resuming_from_next_files_keeps_them_until_it_commits(stopped, run, monkeypatch):
    """Resumed from step 4's .next files, the next save is killed before its trainer.json: step 4 must survive."""
    import sleepcore.train as train_module

    shutil.copy(stopped / "at4" / "trainer.json", run / "trainer.json")
    for name in ("model.safetensors", "optimizer.safetensors"):
        shutil.copy(stopped / "at4" / name, run / f"{name}.next")
    write_json = train_module.write_json

    def killed_at_trainer_json(path, data):
        if Path(path).name == "trainer.json":
            raise KeyboardInterrupt  # the process dies here, its .next files written
        write_json(path, data)

    monkeypatch.setattr(train_module, "write_json", killed_at_trainer_json)
    with pytest.raises(KeyboardInterrupt):
        train(run, *tiny(steps=6), resume=True, progress=False)
    monkeypatch.setattr(train_module, "write_json", write_json)
    info = train(run, *tiny(steps=6), resume=True, progress=False)  # from step 4 again
    assert info["step"] == 6
    _assert_unbroken(stopped, run)


def test_a_save_cut_off_before_trainer_json_resumes_from_the_last_committed_step(stopped, run, capsys):
    """Killed before trainer.json: the new files are .next and uncommitted; step 2's files are whole."""
    for name in ("model.safetensors", "optimizer.safetensors"):
        shutil.copy(stopped / "at4" / name, run / f"{name}.next")
    info = train(run, *tiny(steps=6), resume=True, stop_after=6, progress=False)
    assert "cut off" not in capsys.readouterr().err
    assert info["step"] == 6 and not list(run.glob("*.next"))
    _assert_unbroken(stopped, run)


def test_a_next_file_that_trainer_json_did_not_record_is_not_used(stopped, run):
    shutil.copy(stopped / "at4" / "model.safetensors", run / "model.safetensors")  # neither copy is step 2's
    shutil.copy(stopped / "at4" / "model.safetensors", run / "model.safetensors.next")
    with pytest.raises(CheckpointError, match=r"model.safetensors is not the file trainer.json was saved with"):
        train(run, *tiny(steps=6), resume=True, progress=False)


def test_a_run_saved_before_hashes_resumes_with_a_note(stopped, run, capsys):
    trainer = json.loads((run / "trainer.json").read_text())
    assert set(trainer["sha256"]) == {"model.safetensors", "optimizer.safetensors"}
    del trainer["sha256"]  # what the code before hashes wrote
    (run / "trainer.json").write_text(json.dumps(trainer))
    info = train(run, *tiny(steps=6), resume=True, stop_after=4, progress=False)
    assert "saved before runs recorded their files' SHA-256" in capsys.readouterr().err
    assert info["step"] == 4 and "sha256" in json.loads((run / "trainer.json").read_text())
    a, b = load_file(stopped / "at4" / "model.safetensors"), load_file(run / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _drop_hashes(run):
    trainer = json.loads((run / "trainer.json").read_text())
    del trainer["sha256"]
    (run / "trainer.json").write_text(json.dumps(trainer))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "trainer.json").write_text("{ half"), r"trainer.json is not valid JSON"),
        (lambda r: (r / "trainer.json").write_text('{"step": 2}'), r"trainer.json is missing \['history', 'wall_s'"),
        (lambda r: (r / "trainer.json").write_text("[]"), r"trainer.json must hold a JSON object; got list"),
        (lambda r: (r / "config.json").write_text("{ half"), r"config.json is not valid JSON"),
        (lambda r: (r / "optimizer.safetensors").unlink(), r"has no optimizer.safetensors; it cannot continue"),
        (
            lambda r: _drop_hashes(r) or (r / "model.safetensors").write_bytes(b"\0" * 40),
            r"model.safetensors cannot be read as safetensors",
        ),
        (
            lambda r: _drop_hashes(r) or (r / "optimizer.safetensors").write_bytes(b"\0" * 40),
            r"optimizer.safetensors cannot be read as safetensors",
        ),
    ],
)
def test_resume_names_the_damaged_file(run, damage, message):
    damage(run)
    with pytest.raises(CheckpointError, match=message):
        train(run, *tiny(steps=6), resume=True, progress=False)


def test_a_trainer_json_missing_its_param_groups_is_named(run):
    trainer = json.loads((run / "trainer.json").read_text())
    del trainer["param_groups"]
    (run / "trainer.json").write_text(json.dumps(trainer))
    with pytest.raises(CheckpointError, match=r"trainer.json is missing \['param_groups'\]; a trainer.json holds step"):
        train(run, *tiny(steps=6), resume=True, progress=False)


def test_stop_after_must_be_a_step_still_to_train(run, capsys):
    for bad in ("0", "-1"):
        assert main(["train", "--preset", "tiny", "--out", str(run / "new"), "--stop-after", bad]) == 2
        assert f"--stop-after must be >= 1; got {bad}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"stop_after \(--stop-after\) must be a step >= 1; got 0"):
        train(run / "new", *tiny(steps=6), stop_after=0, progress=False)
    assert not (run / "new").exists()
    before = _files(run)
    with pytest.raises(ValueError, match=r"--stop-after 2: the run in .* is already at step 2, so there is nothing"):
        train(run, *tiny(steps=6), resume=True, stop_after=2, progress=False)
    assert _files(run) == before


def test_a_run_stopped_early_says_so(tmp_path, capsys):
    out = tmp_path / "early"
    assert (
        main(["train", "--preset", "tiny", "--max-steps", "4", "--stop-after", "2", "--out", str(out), "--no-progress"])
        == 0
    )
    assert "stopped at step 2 of 4 (--stop-after): continue with --resume" in capsys.readouterr().out
    assert json.loads((out / "trainer.json").read_text())["step"] == 2
    assert main(["eval", str(out), "--examples", "4", "--no-progress"]) == 0  # its weights, said to be unfinished
    assert f"note: {out} holds an unfinished run: its weights at step 2 of 4" in capsys.readouterr().err


def test_the_final_table_of_train_names_the_effective_depth_as_eval_does(tmp_path, capsys, monkeypatch):
    """gsm counts answers by the question alone: train's closing table says so, in eval's words."""
    import sleepcore.train

    cell = {"acc": 0.5, "lo": 0.4, "hi": 0.6, "n": 10}
    done = {"eval": {"answers": {"1": cell}, "exact": {"1": cell}, "effective": {"1": cell}}}
    monkeypatch.setattr(sleepcore.train, "train", lambda *a, **k: done)
    assert main(["train", "--preset", "gsm-mini", "--out", str(tmp_path / "g"), "--no-progress"]) == 0
    assert "by the depth an answer really needs (operations, the question alone)" in capsys.readouterr().out


def test_a_continuing_preset_with_another_seed_names_the_model_to_continue():
    """Its base is seed 0's shipped model: another seed's run must say which model it continues."""
    with pytest.raises(ValueError, match=r"continues the shipped gsm-chain-1w-n4 \(seed 0's\); with --seed 1 name"):
        build("gsm-chain-1w-long", 4, seed=1)
    named = build("gsm-chain-1w-long", 4, seed=1, overrides={"train": {"init_from": "gsm-chain-1w-n4-s1"}})[3]
    assert (named.init_from, named.seed) == ("gsm-chain-1w-n4-s1", 1)
    assert build("gsm-chain-1w-long", 4, seed=0)[3].init_from == "gsm-chain-1w-n4"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--threads", "0"], r"--threads must be 1 to \d+ \(this machine's cores\); got 0"),
        (["--threads", "100000"], r"--threads must be 1 to \d+ \(this machine's cores\); got 100000"),
        (["--set", "train.threads=0"], r"train.threads must be a positive integer; got 0"),
        (["--set", "train.betas=[0.9]"], r"train.betas must be two numbers in \[0, 1\) .*; got \[0.9\]"),
        (["--set", "train.betas=[0.9, 0.95, 0.99]"], r"train.betas must be two numbers in \[0, 1\)"),
        (["--set", "train.betas=[0.9, 1.0]"], r"train.betas must be two numbers in \[0, 1\)"),
        (["--set", "sleep.passes=2"], r"sleep.passes is N: set it with --passes N"),
        (["--variant", "full-attention", "--passes", "4"], r"full-attention variant never evicts.*N must be 1; got"),
        (["--set", "model.vocab_size=3"], r"model.vocab_size is 3 but task 'rule110' .* must be 12"),
        (["--set", "sleep.window=12"], r"sleep.window is 12 but task 'rule110' lays .* windows of 17 tokens"),
        (["--set", "sleep.window=null", "--passes", "2"], r"sleep.passes is 2 but sleep.window is null"),
        (["--set", "model.max_positions=8"], r"model.max_positions is 8 but the model reads 17 tokens"),
    ],
)
def test_train_rejects_settings_that_cannot_train(argv, message, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["train", "--preset", "tiny", "--out", str(out), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sleepcore train: error: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_sleep_window_null_is_full_attention_over_the_whole_sequence():
    model, sleep, task, _ = build("tiny", 1, overrides={"sleep": {"window": None}})
    assert sleep.window is None and model.max_positions == get_task(task.name, **task.params).seq_len
    assert build("tiny", 1, "full-attention")[0] == dataclasses.replace(model, layers="attn,attn")


def test_bench_rejects_zero_threads(capsys):
    assert main(["bench", "recorder", "--threads", "0"]) == 2
    assert "(this machine's cores); got 0" in capsys.readouterr().err
    assert main(["bench", "recorder", "--threads", "100000"]) == 2
    assert "(this machine's cores); got 100000" in capsys.readouterr().err
