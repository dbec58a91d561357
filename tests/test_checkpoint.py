"""Checkpoints load exactly, and every way a checkpoint can be broken gets a message that says what is wrong."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from sleepcore.checkpoint import CheckpointError, atomic_write, load_checkpoint, resolve
from sleepcore.cli import main
from sleepcore.data import collate
from sleepcore.presets import build
from sleepcore.tasks import get_task
from sleepcore.train import train


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    train(
        out, *build("tiny", 2, steps=4, eval_every=4, save_every=4, eval_examples=16), progress=False, eval_per_depth=4
    )
    return out


@pytest.fixture
def broken(ckpt, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(ckpt, copy)
    return copy


def test_loaded_model_reproduces_the_saved_weights_and_outputs(ckpt):
    model, info = load_checkpoint(ckpt)
    saved = load_file(ckpt / "model.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])
    task = get_task(info["task"]["name"], **info["task"]["params"])
    batch = collate(task.sample(4, seed=1, split="test"))
    a = model(batch["tokens"], batch["loss_mask"]).logits
    b = load_checkpoint(ckpt)[0](batch["tokens"], batch["loss_mask"]).logits
    assert torch.equal(a, b)
    assert info["training"]["tokens"] > 0 and info["eval"]["answers"]


def test_missing_tensor_is_named(broken):
    tensors = load_file(broken / "model.safetensors")
    del tensors["head.weight"]
    save_file(tensors, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing tensors \['head.weight'\]"):
        load_checkpoint(broken)


def test_misshapen_tensor_is_named(broken):
    tensors = load_file(broken / "model.safetensors")
    tensors["tok.weight"] = torch.zeros(3, 3)
    save_file(tensors, broken / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"wrong shapes: tok.weight: \(3, 3\) but the config needs"):
        load_checkpoint(broken)


def test_unreadable_weights_are_reported(broken):
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot be read as safetensors"):
        load_checkpoint(broken)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["model"].update(d_model=-4), "d_model must be a positive integer"),
        (lambda c: c["model"].update(wings=2), r"has no field\(s\) \['wings'\]"),
        (lambda c: c["sleep"].update(passes=0), "passes"),
        (lambda c: c.pop("sleep"), "no 'sleep' section"),
        (lambda c: c["task"].update(name="chess"), "unknown task 'chess'"),
        (lambda c: c["model"].update(d_model=48), "wrong shapes"),
    ],
)
def test_wrong_config_is_reported(broken, edit, message):
    cfg = json.loads((broken / "config.json").read_text())
    edit(cfg)
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(broken)


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("sleep", "passes", "4", "sleep.passes must be an int; got '4'"),
        ("sleep", "passes", 4.0, "sleep.passes must be an int; got 4.0"),
        ("sleep", "passes", True, "sleep.passes must be an int; got True"),
        ("sleep", "window", "17", "sleep.window must be an int or null; got '17'"),
        ("sleep", "embed_norm", 1, "sleep.embed_norm must be true or false; got 1"),
        ("model", "mlp_ratio", "2", "model.mlp_ratio must be a finite number; got '2'"),
        ("model", "norm_eps", "x", "model.norm_eps must be a finite number; got 'x'"),
        ("model", "layers", 5, "model.layers must be a string; got 5"),
        ("model", "d_model", True, "model.d_model must be an int; got True"),
        ("train", "lr", "x", "train.lr must be a finite number; got 'x'"),
        ("train", "threads", 0, r"train.threads must be a positive integer; got 0"),
        ("train", "betas", [0.9], r"train.betas must be two numbers in \[0, 1\) .*; got \[0.9\]"),
        ("train", "betas", [0.9, 0.95, 0.99], r"train.betas must be two numbers in \[0, 1\)"),
        ("task", "params", [1], r"task.params must be a JSON object; got \[1\]"),
        ("task", "name", 7, r"task.name must be a string; got 7"),
    ],
)
def test_a_config_value_of_the_wrong_type_is_named(broken, section, key, value, message):
    cfg = json.loads((broken / "config.json").read_text())
    cfg[section][key] = value
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json is not valid: " + message):
        load_checkpoint(broken)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["model"].update(vocab_size=3), r"model.vocab_size is 3 but task 'rule110' .* must be 12"),
        (  # t9..t12 join the vocabulary: the model has no embedding for them
            lambda c: c["task"]["params"].update(max_depth=12),
            r"model.vocab_size is 12 but task 'rule110' with these parameters has a vocabulary of 16 tokens",
        ),
        (lambda c: c["sleep"].update(window=12), r"sleep.window is 12 but task 'rule110' lays .* windows of 17"),
        (lambda c: c["sleep"].update(window=None), r"model.max_positions is 17 but the model reads 34 tokens"),
        (
            lambda c: c["sleep"].update(window=None) or c["model"].update(max_positions=34),
            r"sleep.passes is 2 but sleep.window is null: nothing is evicted",
        ),
    ],
)
def test_sections_that_do_not_fit_each_other_are_reported(broken, edit, message):
    cfg = json.loads((broken / "config.json").read_text())
    edit(cfg)
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="config.json is not valid: " + message):
        load_checkpoint(broken)


def test_every_shipped_checkpoint_still_loads():
    from sleepcore.checkpoint import CHECKPOINT_ROOT, available

    names = available(CHECKPOINT_ROOT)
    assert len(names) >= 54
    for name in names:
        model, info = load_checkpoint(name)
        assert info["step"] > 0, name


def test_config_that_is_not_json_is_reported(broken):
    (broken / "config.json").write_text("{ half a file")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(broken)


def test_unknown_checkpoint_lists_what_exists(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at 'nowhere'.*shipped checkpoints"):
        resolve("nowhere")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def fail(tmp):
        open(tmp, "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_eval_command_prints_accuracy_by_depth(ckpt, capsys):
    assert main(["eval", str(ckpt), "--examples", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res["answers"]) == {str(d) for d in range(1, 9)}
    assert all(c["n"] == 4 * 16 and c["lo"] <= c["acc"] <= c["hi"] for c in res["answers"].values())
    assert res["passes"] == 2
    assert main(["eval", str(ckpt), "--examples", "2", "--passes", "3"]) == 0
    assert "depth" in capsys.readouterr().out
    assert main(["eval", str(ckpt), "--passes", "0"]) == 2
    assert "--passes must be >= 1" in capsys.readouterr().err


def test_a_card_carries_its_presets_notes_and_in_repo_paths_relative(ckpt, tmp_path):
    from sleepcore import cards
    from sleepcore.checkpoint import read_info

    info = {**read_info(ckpt), "preset": "tiny"}
    assert "Against the targets" not in cards.model_card("x", info, notes=tmp_path)
    (tmp_path / "tiny.md").write_text("N = 2 beats N = 1 by 3 points at t = 5 (`sleepcore eval ...`).\n")
    card = cards.model_card("x", info, notes=tmp_path)
    assert card.endswith(
        "## Against the targets (all models of this preset)\n\n"
        "N = 2 beats N = 1 by 3 points at t = 5 (`sleepcore eval ...`).\n"
    )
    root = cards.CHECKPOINT_ROOT.parent.resolve()
    card = cards.model_card("x", {**info, "command": f"sleepcore train --preset tiny --out {root}/runs/t"})
    assert "Command: `sleepcore train --preset tiny --out runs/t`" in card


def test_a_wake_loop_card_says_where_its_passes_run(ckpt):
    from sleepcore import cards
    from sleepcore.checkpoint import read_info

    info = read_info(ckpt)
    hybrid = cards.model_card("x", info)
    assert "sleep passes per context window." in hybrid and "wake-loop" not in hybrid
    card = cards.model_card("x", {**info, "variant": "wake-loop", "sleep": {**info["sleep"], "loop": "wake"}})
    assert card.startswith("# x\n\nthe wake-loop control: the hybrid that spends its N passes on the windows")
    assert "with **N = 2** passes over every window it answers from, and one over each context window." in card


def test_refresh_cards_rewrites_every_card_from_its_config(ckpt, tmp_path):
    from sleepcore import cards
    from sleepcore.checkpoint import read_info

    shutil.copytree(ckpt, tmp_path / "a")
    (tmp_path / "a" / "README.md").write_text("stale")
    (tmp_path / "not-a-checkpoint").mkdir()
    assert cards.refresh_cards(tmp_path) == [tmp_path / "a" / "README.md"]
    assert (tmp_path / "a" / "README.md").read_text() == cards.model_card("a", read_info(tmp_path / "a"))
    assert main(["ship", "--refresh-cards", "--name", "x"]) == 2
