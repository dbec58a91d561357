"""Data-parallel training (two gloo processes under torchrun) follows single-process training on the same global
batch, and its checkpoint resumes in one process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

import sleepcore.train
from sleepcore.cli import main
from sleepcore.config import cores
from sleepcore.presets import build
from sleepcore.train import train

OVERRIDES = dict(steps=3, batch_size=6, eval_every=1, save_every=3, eval_examples=16)  # 6 = 3 examples per rank
RUNS = {  # name: (N, variant, stop_after)
    "split": (2, "hybrid", 2),  # stops at step 2, then resumes in one process
    "n1": (1, "hybrid", None),  # between_norm takes no part at N = 1: DDP must find it unused
    "attn-only": (3, "attn-only", None),  # pass parameters (2-D, weight-decayed) get no gradient: left untouched
}

DRIVER = textwrap.dedent(
    """
    import sys
    import torch.distributed as dist
    from sleepcore.presets import build
    from sleepcore.train import train

    for name, (passes, variant, stop) in {runs!r}.items():  # the first run starts the group, the others join it
        configs = build("tiny", passes, variant, **{overrides!r})
        train(f"{{sys.argv[1]}}/{{name}}", *configs, stop_after=stop, progress=False, eval_per_depth=2)
    dist.destroy_process_group()
    """
)


def close_tensors(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=k)


def losses(folder) -> list[float]:
    return [h["loss"] for h in json.loads((folder / "config.json").read_text())["history"]]


def same_training(two, one, steps: int) -> None:
    """Loss history, weights and optimizer state agree between a 2-process and a 1-process run."""
    assert len(losses(one)) == steps and losses(two) == pytest.approx(losses(one), abs=2e-5)
    close_tensors(load_file(two / "model.safetensors"), load_file(one / "model.safetensors"))
    close_tensors(load_file(two / "optimizer.safetensors"), load_file(one / "optimizer.safetensors"))


def test_two_processes_match_one_and_resume_in_one(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(runs=RUNS, overrides=OVERRIDES))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(driver)]
    run = subprocess.run([*cmd, str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stderr[-3000:]

    for name, (passes, variant, stop) in RUNS.items():
        two, one = tmp_path / "two" / name, tmp_path / "one" / name
        configs = build("tiny", passes, variant, **OVERRIDES)
        train(one, *configs, stop_after=stop, progress=False, eval_per_depth=2)
        info = json.loads((two / "config.json").read_text())
        assert info["step"] == (stop or OVERRIDES["steps"]) and info["training"]["hardware"].endswith("× 2 processes")
        assert info["training"]["tokens"] == json.loads((one / "config.json").read_text())["training"]["tokens"]
        same_training(two, one, stop or OVERRIDES["steps"])

    # the 2-process checkpoint continues in 1 process to the weights of the run that was never split
    two, one = tmp_path / "two" / "split", tmp_path / "one" / "split"
    configs = build("tiny", 2, "hybrid", **OVERRIDES)
    train(two, *configs, resume=True, progress=False, eval_per_depth=2)
    train(one, *configs, resume=True, progress=False, eval_per_depth=2)
    same_training(two, one, OVERRIDES["steps"])


def test_nproc_launches_torchrun_with_this_command(monkeypatch, tmp_path):
    calls, checked = [], []
    monkeypatch.setattr(sleepcore.train.subprocess, "run", lambda cmd, check: calls.append(cmd) or _Done())
    monkeypatch.setattr(sleepcore.train, "check_run_folder", lambda *a: checked.append(a))
    argv = ["train", "--preset", "tiny", "-N", "2", "--max-steps", "9", "--out", str(tmp_path), "--stop-after", "3"]
    assert main([*argv, "--nproc", "2", "--resume", "--no-progress"]) == 0
    assert checked == [(str(tmp_path), True, 3)], "the run folder is checked once, before the workers start"
    (cmd,) = calls
    assert cmd[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert cmd[6:] == [
        "sleepcore.train", "--preset", "tiny", "--passes", "2", "--max-steps", "9", "--out", str(tmp_path),
        "--stop-after", "3", "--resume", "--no-progress",
    ]  # fmt: skip


def test_nproc_refuses_a_folder_holding_a_run_before_any_worker_starts(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sleepcore.train.subprocess, "run", lambda cmd, check: pytest.fail("a worker was started"))
    (tmp_path / "trainer.json").write_text("{}")  # a run's folder
    argv = ["train", "--preset", "tiny", "--out", str(tmp_path), "--nproc", "2", "--no-progress"]
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    (tmp_path / "trainer.json").unlink()
    assert main([*argv[:-1], "--resume", "--no-progress"]) == 2, "--resume needs a trainer.json"
    assert "holds no trainer.json to resume from" in capsys.readouterr().err
    (tmp_path / "config.json").write_text("{}")  # a checkpoint's folder: neither a new run nor a resume
    for more in ([], ["--resume"]):
        assert main([*argv, *more]) == 2
        assert "holds a checkpoint (its step cannot be read) but no trainer.json" in capsys.readouterr().err


def test_module_entry_point_is_the_train_command(capsys):
    assert sleepcore.train.main(["--preset", "nope", "--out", "x"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    for bad in (0, cores() + 1):
        assert main(["train", "--preset", "tiny", "--out", "x", "--nproc", str(bad)]) == 2
        assert f"--nproc must be 1 to {cores()} (this machine's cores); got {bad}" in capsys.readouterr().err


class _Done:
    returncode = 0
