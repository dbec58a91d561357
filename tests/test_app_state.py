"""The URL view state (app/state.py): every parameter checked, bad ones replaced by a default with a message."""

from __future__ import annotations

import json

import polars as pl
import pytest
from app_fixtures import app_checkpoints  # noqa: F401

from app.state import MAX_SEED, Shape, View, choose_checkpoint, parse_view

NAMES = ["depo-mini-n1", "rule110-mini-n1", "rule110-mini-n4"]
# Three context windows, four passes, fast weights in layers 1 and 3 (attention in 0 and 2), two heads.
SHAPE = Shape(depths=(1, 2, 3, 4, 5, 6, 7, 8), context_windows=3, passes=4, fw_layers=(1, 3), heads=2)
DEFAULTS = dict(depth=5, seed=0, window=2, pass_=4, layer=1, head=0)
VALID = {"depth": "3", "seed": "42", "window": "1", "pass": "2", "layer": "3", "head": "1"}


def fields(view: View) -> dict[str, int]:
    return {k: getattr(view, k) for k in DEFAULTS}


def test_choose_checkpoint_takes_a_known_name():
    assert choose_checkpoint({"ckpt": "rule110-mini-n4"}, NAMES) == ("rule110-mini-n4", [])


def test_choose_checkpoint_without_a_name_takes_the_default_or_the_first():
    assert choose_checkpoint({}, NAMES) == ("depo-mini-n1", [])
    assert choose_checkpoint({}, NAMES, default="rule110-mini-n4") == ("rule110-mini-n4", [])
    assert choose_checkpoint({}, NAMES, default="not-there") == ("depo-mini-n1", [])


@pytest.mark.parametrize("bad", ["nope", "../../etc/passwd", "/work/main/checkpoints/rule110-mini-n4", ""])
def test_choose_checkpoint_falls_back_on_an_unknown_name_and_says_so(bad: str):
    name, messages = choose_checkpoint({"cmp": bad}, NAMES, key="cmp", default="rule110-mini-n1")
    assert name == "rule110-mini-n1"
    assert len(messages) == 1
    assert repr(bad) in messages[0] and "'rule110-mini-n1'" in messages[0]
    assert all(n in messages[0] for n in NAMES), "the message lists the names that work"


def test_choose_checkpoint_with_no_checkpoints_explains_how_to_get_one():
    name, messages = choose_checkpoint({"ckpt": "x"}, [])
    assert name is None
    assert len(messages) == 1 and "sleepcore train" in messages[0] and "found in checkpoints/" in messages[0]
    _, messages = choose_checkpoint({}, [], place="/data/ckpts ($SLEEPCORE_CHECKPOINTS)")
    assert messages[0].startswith("No checkpoints found in /data/ckpts ($SLEEPCORE_CHECKPOINTS): train one")


def test_parse_view_reads_valid_parameters():
    view = parse_view(VALID, "rule110-mini-n4", SHAPE)
    assert fields(view) == dict(depth=3, seed=42, window=1, pass_=2, layer=3, head=1)
    assert view.messages == []
    assert view.ckpt == "rule110-mini-n4" and view.cmp is None


def test_parse_view_defaults_are_the_last_window_after_the_last_pass():
    view = parse_view({}, "rule110-mini-n4", SHAPE)
    assert fields(view) == DEFAULTS
    assert view.messages == []


@pytest.mark.parametrize(
    "key, raw, what",
    [
        ("depth", "9", "Depth"),
        ("depth", "0", "Depth"),
        ("depth", "three", "Depth"),
        ("depth", "", "Depth"),
        ("seed", "-1", "Seed"),
        ("seed", "x", "Seed"),
        ("seed", "1e3", "Seed"),
        ("seed", "4.0", "Seed"),
        ("seed", str(MAX_SEED), "Seed"),
        ("seed", "²", "Seed"),
        ("seed", "9" * 5000, "Seed"),
        ("window", "3", "Window"),
        ("window", "-1", "Window"),
        ("window", "1.5", "Window"),
        ("pass", "0", "Pass"),
        ("pass", "5", "Pass"),
        ("pass", "two", "Pass"),
        ("layer", "0", "Layer"),  # an attention layer: no fast weights to show
        ("layer", "2", "Layer"),
        ("layer", "4", "Layer"),
        ("head", "2", "Head"),
        ("head", "-1", "Head"),
        ("head", "9" * 5000, "Head"),
    ],
)
def test_parse_view_replaces_a_bad_parameter_with_its_default_and_says_so(key: str, raw: str, what: str):
    view = parse_view({**VALID, key: raw}, "rule110-mini-n4", SHAPE)
    attr = "pass_" if key == "pass" else key
    expected = parse_view(VALID, "rule110-mini-n4", SHAPE)
    setattr(expected, attr, DEFAULTS[attr])
    assert fields(view) == fields(expected), "only the bad parameter changes, and it becomes its default"
    assert len(view.messages) == 1
    assert view.messages[0].startswith(what)
    assert str(DEFAULTS[attr]) in view.messages[0], "the message says what is shown instead"


def test_parse_view_reports_every_bad_parameter():
    bad = {"depth": "99", "seed": "x", "window": "7", "pass": "0", "layer": "0", "head": "9"}
    view = parse_view(bad, "rule110-mini-n4", SHAPE)
    assert fields(view) == DEFAULTS
    assert [m.split()[0] for m in view.messages] == ["Depth", "Seed", "Window", "Pass", "Layer", "Head"]


def test_parse_view_lists_the_valid_values():
    (message,) = parse_view({"layer": "2"}, "rule110-mini-n4", SHAPE).messages
    assert "valid: 1, 3" in message
    many = Shape(depths=tuple(range(1, 13)), context_windows=1, passes=1, fw_layers=(1,), heads=1)
    (message,) = parse_view({"depth": "0"}, "rule110-mini-n4", many).messages
    assert "valid: 1–12" in message, "a long list is shown as first–last"


def test_a_model_without_fast_weights_has_layer_zero():
    shape = Shape(depths=(1, 2), context_windows=1, passes=1, fw_layers=(), heads=2)
    view = parse_view({"layer": "1"}, "attn-only", shape)
    assert view.layer == 0 and view.pass_ == 1 and view.window == 0


@pytest.mark.parametrize(
    "view",
    [
        View("rule110-mini-n4", depth=5, layer=1),
        View("rule110-mini-n4", depth=1, seed=MAX_SEED - 1, window=0, pass_=1, layer=3, head=1),
        View("rule110-mini-n4", depth=8, seed=7, window=2, pass_=4, layer=1, head=0, cmp="rule110-mini-n1"),
    ],
)
def test_view_params_round_trip(view: View):
    params = view.params()
    assert all(isinstance(v, str) for v in params.values()), "query parameters are strings"
    assert "pass" in params and "pass_" not in params and "messages" not in params
    assert ("cmp" in params) == (view.cmp is not None)
    again = parse_view(params, params["ckpt"], SHAPE, cmp=params.get("cmp"))
    assert again == view
    assert again.messages == []


def test_the_overview_finds_the_results_tables_it_does_not_chart(tmp_path, monkeypatch):
    from analysis import session

    (tmp_path / "RESULTS.md").write_text(
        "# Results\n\nintro\n\n## gsm-x (gsm): accuracy per answer\n\n| a |\n\n"
        "## gsm-x (gsm): accuracy per answer by operations, the question alone\n\nwhy\n\n| q |\n\n"
        "## gsm-xy (gsm): accuracy per answer by operations, the question alone\n\n| other preset |\n\n"
        "## depo-k4 (depo): the first answer of each sequence alone\n\n| f |\n"
    )
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    assert session.results_sections("gsm-x") == [
        ("accuracy per answer by operations, the question alone", "why\n\n| q |")
    ]
    assert session.results_sections("depo-k4") == [("the first answer of each sequence alone", "| f |")]
    assert session.results_sections("rule110-mini") == []
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path / "none"))
    assert session.results_sections("gsm-x") == []


def test_result_rows_come_from_results_json_where_it_evaluated_these_weights(
    app_checkpoints,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    from analysis import session
    from sleepcore.results import read_results_json

    rows, notes = session.result_rows(["tiny-n2", "tiny-gsm-n2"])
    assert notes == [] and [r["source"] for r in rows] == ["RESULTS.json (8 per depth, seed 777)"] * 2
    gsm = rows[1]
    assert gsm["checkpoint"] == "tiny-gsm-n2" and gsm["effective_name"] == "operations, the question alone"
    # the question alone: one per sequence, 8 sequences per operation count (the roots, at 0, are never asked)
    assert {d: c["n"] for d, c in gsm["effective"].items()} == {d: 8 for d in gsm["answers"] if d != "0"}

    # another root: tiny-n1 as shipped, tiny-n2 retrained since (other weights), and a broken checkpoint
    for name in ("tiny-n1", "tiny-n2"):
        (tmp_path / name).symlink_to(app_checkpoints / name)
    doc = read_results_json(app_checkpoints / "RESULTS.json")
    for r in doc["results"]:
        r["weights_sha256"] = "f" * 64 if r["checkpoint"] == "tiny-n2" else r["weights_sha256"]
    (tmp_path / "RESULTS.json").write_text(json.dumps(doc))
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    rows, notes = session.result_rows(["tiny-n1", "tiny-n2", "gone"])
    assert [(r["checkpoint"], r["source"]) for r in rows] == [
        ("tiny-n1", "RESULTS.json (8 per depth, seed 777)"),
        ("tiny-n2", "config.json (end of training)"),
    ]
    assert notes[0].startswith("tiny-n2: ") and "evaluated other weights" in notes[0]
    assert notes[1].startswith("Checkpoint skipped: gone: unknown checkpoint 'gone'")

    (tmp_path / "RESULTS.json").write_text('{"format": 1, "per_depth": 8, "seed": 1, "results": [{"checkpoint": 3}]}')
    rows, notes = session.result_rows(["tiny-n1"])
    assert [r["source"] for r in rows] == ["config.json (end of training)"]
    assert "result 0 lacks or mistypes checkpoint" in notes[0] and "stored evaluation instead" in notes[0]


def test_a_checkpoint_whose_files_are_damaged_is_skipped_with_the_reason(app_checkpoints, tmp_path, monkeypatch):  # noqa: F811
    """What the app's overview reads beside each checkpoint, damaged (an audit of the app, 2026-12-05): a stored
    evaluation of the wrong shape, weights that do not load, a model card that is not text. Each is said, and the
    other checkpoints are shown."""
    import shutil

    from analysis import session

    for name in ("tiny-n1", "tiny-n2", "tiny-gsm-n2"):
        shutil.copytree(app_checkpoints / name, tmp_path / name)
    shutil.copy(app_checkpoints / "RESULTS.json", tmp_path / "RESULTS.json")
    info = json.loads((tmp_path / "tiny-n1" / "config.json").read_text())
    (tmp_path / "tiny-n1" / "config.json").write_text(json.dumps({**info, "eval": {"answers": "x"}}))
    (tmp_path / "RESULTS.json").write_text((tmp_path / "RESULTS.json").read_text().replace('"tiny-n1"', '"other"'))
    (tmp_path / "tiny-n2" / "model.safetensors").write_bytes(b"cut short")
    shutil.copytree(app_checkpoints / "tiny-n1", tmp_path / "unlisted")  # in no RESULTS.json, its weights cut short
    (tmp_path / "unlisted" / "model.safetensors").write_bytes(b"cut short")
    (tmp_path / "tiny-gsm-n2" / "README.md").write_bytes(b"\xff\xfe not text")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    rows, notes = session.result_rows(["tiny-n1", "tiny-n2", "tiny-gsm-n2", "unlisted"])
    assert [r["checkpoint"] for r in rows] == ["tiny-gsm-n2"]
    assert notes[2].startswith("Checkpoint skipped: unlisted: ") and "cannot be read as safetensors" in notes[2]
    assert notes[0] == (
        "Checkpoint skipped: tiny-n1: its config.json's stored evaluation ('eval') is not "
        "{answers, exact: {depth: {acc, lo, hi, n}}}"
    )
    assert notes[1].startswith("Checkpoint skipped: tiny-n2: ") and "cannot be read as safetensors" in notes[1]
    card = session.model_card("tiny-gsm-n2")
    assert "model card" in card and "cannot be read: it is not UTF-8 text" in card and "--refresh-cards" in card


def test_every_shipped_preset_charts_every_count_it_has(monkeypatch):
    """The app's overview and export draw one figure per preset and count from the shipped results: checkpoints
    that continue others (rule110-long) and replicas must not collide, and gsm must have its question alone."""
    from analysis import session
    from analysis.figures import METRICS, accuracy_vs_passes, results_table
    from sleepcore.checkpoint import CHECKPOINT_ROOT

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(CHECKPOINT_ROOT))  # app tests point it at tiny checkpoints
    rows, notes = session.result_rows(session.checkpoint_names())
    assert notes == [] and {r["source"] for r in rows} == {"RESULTS.json (1,000 per depth, seed 777)"}
    table = results_table(rows)
    charted = set()
    for preset in table["preset"].unique().to_list():
        sub = table.filter(pl.col("preset") == preset)
        for metric in METRICS:
            if sub.filter(pl.col("metric") == metric).height:
                accuracy_vs_passes(sub, metric=metric)
                charted.add((preset, metric))
    assert {("gsm-chain-1w", "effective"), ("depo-k4", "first"), ("rule110-long", "exact")} <= charted
    one = next(r for r in rows if r["checkpoint"] == "rule110-long-n4")
    assert {r["checkpoint"] for r in session.preset_rows("rule110-long-n4")} >= {"rule110-long-n1", one["checkpoint"]}
    assert not {r["preset"] for r in session.preset_rows("rule110-long-n4")} - {"rule110-long"}


def test_parse_sweep_reads_the_passes_and_examples_in_the_url():
    from app.state import SweepView, parse_sweep

    assert parse_sweep({}, trained=4) == SweepView([1, 2, 3, 4, 5, 6, 7, 8], 50, [])
    assert parse_sweep({}, trained=1) == SweepView([1, 2], 50, [])
    view = parse_sweep({"P": "6, 1,3", "examples": "250"}, trained=2)
    assert view == SweepView([1, 3, 6], 250, [])
    assert parse_sweep(view.params(), trained=2) == view  # the URL reopens the same sweep
    assert parse_sweep({"P": "16"}, trained=8).passes == [16]  # up to 2 × the trained N


@pytest.mark.parametrize(
    "params, says",
    [
        (
            {"P": "0,2"},
            "Passes '0,2' are not test-time N this page offers (comma-separated, each in 1–8); showing 1,2.",
        ),
        ({"P": "9"}, "each in 1–8"),
        ({"P": "two"}, "Passes 'two'"),
        ({"P": ","}, "Passes ','"),
        ({"P": "1,01"}, "Passes '1,01'"),
        ({"P": "9" * 40}, "showing 1,2."),
        ({"examples": "7"}, "Examples '7' is not one of 25, 50, 100, 250, 500; showing 50."),
        ({"examples": "../x"}, "Examples '../x'"),
    ],
)
def test_parse_sweep_replaces_a_bad_value_with_its_default_and_says_so(params, says):
    from app.state import parse_sweep

    view = parse_sweep(params, trained=1)
    (message,) = view.messages
    assert says in message
    assert (view.passes, view.examples) == ([1, 2], 50)  # the defaults for a model trained with N = 1


def test_streamlit_run_by_hand_serves_this_machine_only():
    """`streamlit run app/main.py` without flags reads .streamlit/config.toml: 127.0.0.1, as `make app` does."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_compare_names_what_keeps_two_checkpoints_apart():
    from app.state import not_comparable

    gsm1 = {"name": "gsm", "params": {"context_windows": 1, "window": 48}}
    gsm2 = {"name": "gsm", "params": {"context_windows": 2, "window": 48}}
    assert not_comparable("a", gsm1, "b", {"name": "depo", "params": {}}) == "'b' is trained on depo, 'a' on gsm"
    assert not_comparable("a", gsm1, "b", gsm2) == (
        "'b' is trained on gsm with other settings (context_windows 2 there, 1 here) than 'a'"
    )


def test_a_long_url_value_is_echoed_cut_short():
    params = {"depth": "9" * 6000, "seed": "x" * 5000, "window": "7" * 3000}
    view = parse_view(params, "rule110-mini-n4", SHAPE)
    assert len(view.messages) == 3
    for message in view.messages:
        assert len(message) < 200 and "…" in message, message
    assert view.problems["depth"].startswith(f"Depth '{'9' * 40}'… (6,000 characters) does not exist")
    name, (message,) = choose_checkpoint({"ckpt": "a" * 20000}, NAMES)
    assert name == NAMES[0] and len(message) < 300 and "(20,000 characters)" in message


def test_an_unknown_checkpoint_message_lists_a_handful_of_names_and_the_close_ones_first():
    names = [f"depo-k{k}-n{n}-s{s}" for k in (2, 4, 8) for n in (1, 2, 4, 8) for s in range(6)] + ["rule110-long-n4"]
    _, (message,) = choose_checkpoint({"ckpt": "rule110-lnog-n4"}, names)
    assert message.startswith("Unknown checkpoint 'rule110-lnog-n4' in the URL; showing 'depo-k2-n1-s0'. ")
    assert "Did you mean rule110-long-n4? " in message
    assert f"and {len(names) - 8} more (the sidebar lists all {len(names)})." in message
    assert sum(n in message for n in names) == 8 and len(message) < 300


def test_choose_checkpoint_says_why_a_checkpoint_that_exists_cannot_be_used():
    why = {"half": "it has a config.json but no model.safetensors"}.get
    name, (message,) = choose_checkpoint({"ckpt": "half"}, NAMES, unusable=why)
    assert name == NAMES[0]
    assert message == (
        "Checkpoint 'half' in the URL exists but cannot be used: it has a config.json but no model.safetensors; "
        "showing 'depo-mini-n1'."
    )
    _, (message,) = choose_checkpoint({"ckpt": "other"}, NAMES, unusable=why)
    assert message.startswith("Unknown checkpoint 'other'")
    _, (message,) = choose_checkpoint({}, [], missing="The checkpoints folder /x does not exist.")
    assert message == "The checkpoints folder /x does not exist."


def test_commands_name_the_checkpoints_folder_only_where_it_is_another(monkeypatch):
    """data.shell and data.runnable: SLEEPCORE_CHECKPOINTS=… before a command where the app serves another folder
    than the repository's checkpoints/, as the overview's results_command writes it; nothing before it otherwise."""
    from app import data
    from sleepcore.checkpoint import CHECKPOINT_ROOT

    message = "x is damaged; write it again with: sleepcore sweep x --out y; or `sleepcore ship --refresh-cards`."
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(CHECKPOINT_ROOT))
    assert data.shell("sleepcore eval") == "sleepcore eval" and data.runnable(message) == message
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", "/data/my ckpts")
    assert data.shell("sleepcore eval") == "SLEEPCORE_CHECKPOINTS='/data/my ckpts' sleepcore eval"
    assert data.runnable(message) == (
        "x is damaged; write it again with: SLEEPCORE_CHECKPOINTS='/data/my ckpts' sleepcore sweep x --out y; or "
        "`SLEEPCORE_CHECKPOINTS='/data/my ckpts' sleepcore ship --refresh-cards`."
    )
