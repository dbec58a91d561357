"""Every shipped checkpoint loads and re-evaluates to the table in its config.json (a code change that breaks a
checkpoint fails here)."""

import json
import shlex

import pytest

from sleepcore.checkpoint import available, read_info, resolve
from sleepcore.results import SWEEP_FILE, evaluate_checkpoint, read_sweep, sweep_command

SHIPPED = available()
SWEPT = [name for name in SHIPPED if (resolve(name) / SWEEP_FILE).is_file()]


def test_checkpoints_folder_stays_small():
    from sleepcore.checkpoint import CHECKPOINT_ROOT

    total = sum(p.stat().st_size for p in CHECKPOINT_ROOT.rglob("*") if p.is_file()) if CHECKPOINT_ROOT.exists() else 0
    assert total < 50 * 2**20


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_reproduces_its_evaluation(name):
    info = read_info(name)
    stored = info["eval"]
    assert info["finished"]
    fresh = evaluate_checkpoint(name, per_depth=stored["per_depth"], seed=stored["seed"])
    for metric in ("answers", "exact"):
        for depth, cell in stored.get(metric, {}).items():
            now = fresh[metric][depth]
            assert now["n"] == cell["n"]
            # the same examples: only float rounding on another CPU could flip an answer, so within the interval
            assert abs(now["acc"] - cell["acc"]) <= (cell["hi"] - cell["lo"]) / 2, (metric, depth)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_has_a_model_card_with_its_table(name):
    card = (resolve(name) / "README.md").read_text()
    assert "sleepcore train" in card and "sleepcore eval" in card
    first = next(iter(read_info(name)["eval"]["answers"].values()))
    assert f"{first['acc']:.3f}" in card
    from sleepcore.tasks import get_task

    task = read_info(name)["task"]
    about = get_task(task["name"], **task["params"]).first_answer_about
    assert (about is not None and f"Counting only {about}" in card) or (about is None and "Counting only" not in card)


@pytest.mark.parametrize("name", SWEPT)
def test_a_shipped_sweep_is_of_its_checkpoints_weights_and_in_its_card(name):
    sweep = read_sweep(resolve(name))  # raises if it was computed on other weights
    trained = read_info(name)["sleep"]["passes"]
    assert sweep["trained_passes"][0] == trained
    assert sorted(sweep["passes"].unique().to_list()) == list(range(1, 2 * trained + 1))
    card = (resolve(name) / "README.md").read_text()
    loop = read_info(name)["sleep"].get("loop", "sleep")
    heading = "## Sleep at test time" if loop == "sleep" else "## Wake passes at test time"
    assert heading in card and sweep_command(name, sweep, trained) in card


def test_the_app_opens_on_a_shipped_checkpoint():
    from app.data import FEATURED

    assert FEATURED in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_matches_the_preset_its_command_names(name):
    """The card's training command reproduces the checkpoint only while its preset still builds the same configs."""
    from dataclasses import asdict

    from sleepcore.cli import parse_settings
    from sleepcore.config import from_dict
    from sleepcore.presets import build

    info = read_info(name)
    argv = shlex.split(info["command"])
    flags = {"--seed": "seed", "--data-seed": "data_seed", "--max-steps": "steps"}  # the command's train overrides
    given = {key: int(argv[argv.index(flag) + 1]) for flag, key in flags.items() if flag in argv}
    settings = parse_settings([argv[i + 1] for i, a in enumerate(argv) if a == "--set"])
    built = build(info["preset"], info["sleep"]["passes"], info.get("variant", "hybrid"), overrides=settings, **given)
    for section, cfg in zip(("model", "sleep", "task", "train"), built, strict=True):
        want = json.loads(json.dumps(asdict(cfg)))  # tuples become lists, as in config.json
        have = json.loads(json.dumps(asdict(from_dict(type(cfg), info[section]))))  # settings added since: defaults
        if section == "train":  # threads is how a run was launched, not what it learned
            want.pop("threads"), have.pop("threads", None)
        assert want == have, (name, section)


@pytest.mark.parametrize("name", [n for n in SHIPPED if read_info(n).get("continued_from")])
def test_a_continued_checkpoint_started_from_the_weights_shipped_under_its_base_name(name):
    """Re-shipping a base model would silently break a continuation's story; its recorded digest catches that."""
    import hashlib

    base = read_info(name)["continued_from"]
    assert base["name"] in SHIPPED, f"{name} continues {base['name']}, which is not shipped"
    assert hashlib.sha256((resolve(base["name"]) / "model.safetensors").read_bytes()).hexdigest() == base["sha256"]
    assert read_info(base["name"])["step"] == base["step"]


def test_results_json_holds_every_shipped_checkpoint_and_writes_results_md():
    """RESULTS.json evaluated exactly the shipped weights, and RESULTS.md is its rendering: neither is stale."""
    from sleepcore.checkpoint import CHECKPOINT_ROOT, weights_sha256
    from sleepcore.results import SHIPPED_COMMAND, read_results_json, results_markdown

    doc = read_results_json(CHECKPOINT_ROOT / "RESULTS.json")
    by_name = {r["checkpoint"]: r for r in doc["results"]}
    assert sorted(by_name) == SHIPPED
    stale = [n for n in SHIPPED if by_name[n]["weights_sha256"] != weights_sha256(n)]
    assert not stale, f"re-run `{doc['command']}`: RESULTS.json evaluated other weights for {stale}"
    assert doc["command"] == SHIPPED_COMMAND, "the shipped tables are written by the command the docs give"
    markdown = results_markdown(doc["per_depth"], doc["seed"], doc["results"], doc["command"])
    assert markdown == (CHECKPOINT_ROOT / "RESULTS.md").read_text(encoding="utf-8")


def test_every_checkpoint_the_docs_name_is_shipped():
    """A model named in the README, RESULTS.md or a preset's notes exists under that name (a renamed or dropped
    checkpoint leaves no stale name behind). Presets, and run folders (`runs/NAME`), are other things."""
    import re

    from sleepcore.checkpoint import CHECKPOINT_ROOT
    from sleepcore.presets import PRESETS

    docs = [
        CHECKPOINT_ROOT.parent / "README.md",
        CHECKPOINT_ROOT / "RESULTS.md",
        *(CHECKPOINT_ROOT / "NOTES").glob("*.md"),
    ]
    prefixes = "|".join(sorted({name.split("-")[0] for name in SHIPPED}))
    pattern = re.compile(rf"(?<![\w/-])((?:{prefixes})-[a-z0-9]+(?:-[a-z0-9]+)*)\b")
    named = {(doc.name, m) for doc in docs for m in pattern.findall(doc.read_text())}
    unknown = sorted((doc, m) for doc, m in named if m not in SHIPPED and m not in PRESETS)
    assert not unknown, f"named in the docs but neither shipped nor a preset: {unknown}"
