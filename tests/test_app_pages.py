"""Page fixes under AppTest, on the tiny checkpoints: Compare with the wake loop and with itself, the Explorer's
probe curve from pass 1, and the sweep page's text for models without sleep."""

from __future__ import annotations

import pytest

# The fixtures are used by name: pytest finds them in this module.
from app_fixtures import ALL, BASELINES, SLEEPERS, WAKE_LOOP, app_checkpoints  # noqa: F401
from test_app import assert_clean, figure, open_page, texts

pytestmark = pytest.mark.usefixtures("app_checkpoints")
WAKE = WAKE_LOOP[0]  # tiny-wake-loop-n2: N = 2 passes, spent when answering


def metric(at, label_start: str):
    (found,) = [m for m in at.metric if m.label.startswith(label_start)]
    return found


def woke_now(ckpt: str, pass_: int) -> tuple[str, str]:
    """The Explorer's "If it woke now" metric (label, value) for this checkpoint at this pass."""
    at = open_page("explorer", {"ckpt": ckpt, "pass": str(pass_)})
    at.segmented_control(key="view").set_value("If it woke now").run()
    assert_clean(at)
    return at.metric[0].label, at.metric[0].value


def test_compare_shows_the_wake_loop_at_its_wake_pass_as_the_explorer_does():
    at = open_page("compare", {"ckpt": "tiny-n2", "cmp": WAKE, "pass": "2"})
    assert_clean(at)
    assert not at.warning, texts(at.warning)
    sleeper, wake = at.metric  # the left column's, the right's
    assert (wake.label, wake.value) == woke_now(WAKE, 2), "the wake loop's N passes, as the Explorer counts them"
    assert (sleeper.label, sleeper.value) == woke_now("tiny-n2", 2)
    assert at.slider(key="pass").max == 2 and "wake" in at.slider(key="pass").label.lower()
    # its context window is written once: the state shown is that write at any pass
    assert "its one write of window" in figure(at, f"state_{WAKE}")["layout"]["title"]["text"]


def test_compare_steps_the_wake_loops_passes_beside_an_n1_model():
    """N = 1 beside the wake loop: the slider spans the wake loop's N = 2 passes (it had none: both stuck at 1)."""
    at = open_page("compare", {"ckpt": WAKE, "cmp": "tiny-n1"})
    assert_clean(at)
    assert at.slider(key="pass").max == 2 and at.slider(key="pass").value == 2
    assert metric(at, "Answers right after").label == "Answers right after 2 wake pass(es)"
    assert metric(at, "Answers right if").label == "Answers right if every context window slept 1 pass(es)"
    at.slider(key="pass").set_value(1).run()
    assert_clean(at)
    wake = metric(at, "Answers right after")
    assert (wake.label, wake.value) == woke_now(WAKE, 1)


def test_compare_does_not_compare_a_checkpoint_with_itself():
    at = open_page("compare", {"ckpt": "tiny-n2", "cmp": "tiny-n2"})
    assert_clean(at)
    (said,) = [i for i in texts(at.info) if "itself" in i]  # an info, not a warning: the user may have typed no URL
    assert said.startswith("A checkpoint is not compared with itself: comparing 'tiny-n2' with 'tiny-n1'.")
    others = [n for n in SLEEPERS + BASELINES + WAKE_LOOP if n != "tiny-n2"]  # the Rule 110 ones
    assert all(n in said for n in others), "it lists the checkpoints to compare it with"
    assert texts(at.subheader) == ["tiny-n2 (N = 2)", "tiny-n1 (N = 1)"], "two columns"
    assert "tiny-n2" not in at.selectbox(key="select_cmp").options
    assert at.query_params["cmp"] == "tiny-n1", "the URL is corrected"


@pytest.mark.parametrize("cmp", [None, "tiny-depo-n2", "tiny-n1"])
def test_compare_says_when_there_is_nothing_to_compare_with(cmp: str | None):
    """tiny-depo-n2 is the only Depo checkpoint: no second column of the same model."""
    at = open_page("compare", {"ckpt": "tiny-depo-n2", **({"cmp": cmp} if cmp else {})})
    assert_clean(at)
    assert not at.warning, texts(at.warning)
    (info,) = texts(at.info)
    assert "nothing to compare it with" in info
    assert ("'tiny-n1' is trained on rule110, 'tiny-depo-n2' on depo" in info) == (cmp == "tiny-n1")
    assert "{" not in info, "the task by name, not as a dict"
    assert not at.subheader and not [s for s in at.selectbox if s.key == "select_cmp"]
    assert "cmp" not in at.query_params


@pytest.fixture
def with_shipped_probes(app_checkpoints, tmp_path, monkeypatch):  # noqa: F811
    """The app's checkpoints, with the sleepers (N = 1, 2) replaced by copies that ship a probes table as
    `sleepcore probe` writes it (pass 1 under baseline "pass1", passes 2..N under "trained")."""
    import streamlit as st

    from analysis.probes import PROBES_FILE, probe_checkpoint

    for name in ALL:
        if name in SLEEPERS:
            (tmp_path / name).mkdir()
            for f in (app_checkpoints / name).iterdir():
                (tmp_path / name / f.name).symlink_to(f)
            table = probe_checkpoint(app_checkpoints / name, examples=16, seeds=(0,), progress=False)
            table.write_parquet(tmp_path / name / PROBES_FILE)
        else:
            (tmp_path / name).symlink_to(app_checkpoints / name)
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    st.cache_data.clear()
    yield
    st.cache_data.clear()


@pytest.mark.usefixtures("with_shipped_probes")
@pytest.mark.parametrize("ckpt, passes", [("tiny-n1", [1]), ("tiny-n2", [1, 2])])
def test_the_explorers_probe_curve_starts_at_pass_1(ckpt: str, passes: list[int]):
    at = open_page("explorer", {"ckpt": ckpt})
    at.segmented_control(key="view").set_value("Probes").run()
    assert_clean(at)
    curves = [t for t in figure(at, "probe_position")["data"] if t.get("mode") == "lines+markers"]
    assert curves, "the chart draws the trained model's curve"
    assert all(t["x"] == passes for t in curves), "every pass, pass 1 included"


def test_the_sweep_page_says_a_full_attention_model_has_no_passes_to_sweep():
    at = open_page("sweep", {"ckpt": "tiny-full-attention"})
    assert_clean(at)
    assert not any("trained to sleep" in m for m in texts(at.markdown))
    (info,) = texts(at.info)
    assert "never evicts" in info and "same answers" in info
    assert not at.multiselect and not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-sweep_figure")]


def test_the_sweep_page_says_what_an_attention_only_models_passes_do():
    at = open_page("sweep", {"ckpt": "tiny-attn-only", "P": "1,3", "examples": "25"})
    assert_clean(at)
    (about,) = [m for m in texts(at.markdown) if "tiny-attn-only" in m]
    assert "trained to sleep" not in about
    assert "no fast-weight layers" in about and "attention layers only" in about and "evicts" in about
    lines = [t for t in figure(at, "sweep_figure")["data"] if t["name"].startswith("depth ")]
    assert lines and all(t["x"] == [1, 3] and t["y"][0] == t["y"][1] for t in lines), "every P answers the same"


@pytest.mark.parametrize(
    "page, ckpt, cmp, told, not_told",
    [
        ("explorer", "tiny-n2", None, ["Pass", "Head", "Window"], []),
        ("probes", "tiny-n2", None, ["Pass"], ["Head", "Window"]),  # the probe lab has no window or head to choose
        ("probes", "tiny-n1", None, [], ["Pass", "Head", "Window"]),  # nor a pass slider at N = 1
        ("sweep", "tiny-n2", None, [], ["Pass", "Head", "Window"]),  # nor the sweep page any: they wait for others
        ("compare", "tiny-n2", "tiny-n1", ["Pass"], ["Head", "Window"]),
        ("compare", "tiny-n1", "tiny-attn-only", [], ["Pass", "Head", "Window"]),  # N = 1 on both sides: no slider
    ],
)
def test_a_page_warns_only_of_the_url_values_it_has_controls_for(page, ckpt, cmp, told, not_told):
    params = {"ckpt": ckpt, "pass": "9", "head": "7", "window": "5"}
    at = open_page(page, params if cmp is None else {**params, "cmp": cmp})
    assert not at.exception, [e.value for e in at.exception]
    warned = texts(at.warning)
    assert sorted(w.split(" ")[0] for w in warned) == sorted(told), warned
    for what in not_told:  # left in the URL as they were, for the page that shows them to judge
        assert at.query_params[what.lower()] == params[what.lower()]
    at.run()
    assert not at.warning, texts(at.warning)  # what was told was corrected: it is not told again


@pytest.mark.parametrize(
    "cmp, label",
    [
        ("tiny-attn-only", "Answers right (attention only: no fast weights carry anything across an eviction)"),
        ("tiny-full-attention", "Answers right (full attention: it never evicts, so it has no sleep)"),
    ],
)
def test_compare_does_not_say_a_model_without_sleep_slept(cmp: str, label: str):
    at = open_page("compare", {"ckpt": "tiny-n2", "cmp": cmp})
    assert_clean(at)
    assert [m.label for m in at.metric] == ["Answers right if every context window slept 2 pass(es)", label]
    assert all(" / " in m.value for m in at.metric), "each its answers right, of how many"
