"""The app's pages under Streamlit's AppTest (no browser), on tiny checkpoints trained for the session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# The fixtures are used by name: pytest finds them in this module.
from app_fixtures import (  # noqa: F401
    ALL,
    APP,
    BASELINES,
    OTHER_TASKS,
    SLEEPERS,
    WAKE_LOOP,
    app_checkpoints,
    checkpoints_like,
    with_a_broken_checkpoint,
)
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.usefixtures("app_checkpoints")

TITLES = {
    "overview": "Language models that sleep",
    "explorer": "Sleep explorer",
    "probes": "Probe lab",
    "compare": "Compare",
    "sweep": "Sleep at test time",
    "export": "Export",
}
TIMEOUT = 120  # a cold page loads a model and records a trace; the machine may be busy training


def open_page(page: str, params: dict[str, str] | None = None) -> AppTest:
    """The page as opened from a URL with these query parameters."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(f"views/{page}.py")
    at.query_params.update(params or {})
    return at.run()


def click_to(at: AppTest, page: str) -> AppTest:
    """Move to another page as a click in the browser's sidebar does: the URL's parameters are dropped (AppTest's
    switch_page keeps them)."""
    at.switch_page(f"views/{page}.py")
    at.query_params.clear()
    return at.run()


def figure(at: AppTest, key: str) -> dict:
    """The plotly figure drawn by st.plotly_chart(..., key=key), as its JSON."""
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(charts) == 1, f"no chart {key!r}; charts: {[c.proto.id for c in at.get('plotly_chart')]}"
    return json.loads(charts[0].proto.spec)


def heatmap_z(at: AppTest, key: str = "state_heatmap") -> object:
    return figure(at, key)["data"][0]["z"]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, f"the page raised: {texts(at.exception)}"
    assert not at.error, f"the page shows errors: {texts(at.error)}"


@pytest.mark.parametrize("ckpt", SLEEPERS + BASELINES + OTHER_TASKS + WAKE_LOOP)
@pytest.mark.parametrize("page", TITLES)
def test_every_page_loads(page: str, ckpt: str):
    at = open_page(page, {"ckpt": ckpt})
    assert_clean(at)
    assert texts(at.title) == [TITLES[page]]
    assert not at.warning, f"a valid URL gives no warnings: {texts(at.warning)}"


@pytest.mark.parametrize("page", ["explorer", "probes"])
@pytest.mark.parametrize("ckpt", BASELINES)
def test_a_model_without_fast_weights_says_so(page: str, ckpt: str):
    at = open_page(page, {"ckpt": ckpt})
    assert_clean(at)
    assert any("no fast-weight layers" in i for i in texts(at.info))
    if page == "explorer":  # the full-attention reference never evicts: everything crosses, nothing is consolidated
        assert any("never evicts" in i for i in texts(at.info)) == (ckpt == "tiny-full-attention")


@pytest.mark.parametrize("ckpt, sleeps", [("tiny-n2", 2), ("tiny-depo-n2", 2), (WAKE_LOOP[0], 1)])
def test_the_probe_lab_reads_the_shown_example_off_the_fast_weights(ckpt: str, sleeps: int):
    from analysis import session

    at = open_page("probes", {"ckpt": ckpt})
    at.select_slider(key="probe_examples").set_value(64)
    at.button(key="fit_probes").click().run()
    assert_clean(at)
    # the wake loop writes each context window once: one state to ask, so no pass slider
    assert [s.max for s in at.slider if s.key == "pass"] == ([sleeps] if sleeps > 1 else [])
    at.button(key="query").click().run()
    assert_clean(at)
    answers = at.dataframe[-1].value
    assert list(answers.columns) == ["item", "truth", "probe", "right"] and len(answers) > 0
    assert at.metric[0].value == f"{int(answers['right'].sum())} / {len(answers)}"
    loaded = session.load(ckpt)
    fact_depth = at.selectbox(key="fact_depth").value
    expected = session.query_fact(
        loaded, session.seeded_example(loaded.task, at.selectbox(key="depth").value, 0), 1, sleeps, fact_depth
    )
    assert answers["truth"].tolist() == expected["truth"].to_list(), "the page asks the shown example"


def test_the_pass_slider_changes_the_state_shown():
    at = open_page("explorer", {"ckpt": "tiny-n2"})
    assert at.slider(key="pass").value == 2, "the default is the last pass"
    after_two = heatmap_z(at)
    at.slider(key="pass").set_value(1).run()
    assert_clean(at)
    assert heatmap_z(at) != after_two
    assert "pass 1" in figure(at, "state_heatmap")["layout"]["title"]["text"]
    assert at.query_params["pass"] == "1", "the URL follows the slider"
    at.slider(key="pass").set_value(2).run()
    assert heatmap_z(at) == after_two, "stepping back shows the same state again"


def test_the_wake_loop_explorer_shows_its_one_write_and_steps_its_wake_passes():
    at = open_page("explorer", {"ckpt": WAKE_LOOP[0]})
    assert_clean(at)
    assert any("wake-loop control" in i for i in texts(at.info))
    assert at.slider(key="pass").label == "Wake pass" and at.slider(key="pass").value == 2
    assert "pass 1" in figure(at, "state_heatmap")["layout"]["title"]["text"], "its context has one pass"
    at.segmented_control(key="view").set_value("If it woke now").run()
    assert_clean(at)
    assert at.metric[0].label == "Answers right after 2 wake pass(es)"
    at.slider(key="pass").set_value(1).run()
    assert_clean(at)
    assert at.metric[0].label == "Answers right after 1 wake pass(es)"


def test_query_parameters_restore_a_view():
    view = {"ckpt": "tiny-n2", "depth": "3", "seed": "7", "pass": "1", "layer": "1", "head": "1"}
    at = open_page("explorer", view)
    assert_clean(at)
    assert not at.warning
    assert at.selectbox(key="select_ckpt").value == "tiny-n2"
    assert at.selectbox(key="depth").value == 3
    assert at.number_input(key="seed").value == 7
    assert at.slider(key="pass").value == 1
    assert at.selectbox(key="layer").value == 1
    assert at.selectbox(key="head").value == 1
    other = open_page("explorer", {**view, "seed": "8"})
    assert heatmap_z(at) != heatmap_z(other), "the seed in the URL picks the example"


def test_an_unknown_checkpoint_in_the_url_falls_back_with_a_warning():
    at = open_page("explorer", {"ckpt": "../../etc", "pass": "9"})
    assert not at.exception
    first = sorted(ALL)[0]
    warnings = texts(at.warning)
    assert any("Unknown checkpoint '../../etc'" in w and repr(first) in w for w in warnings)
    assert at.selectbox(key="select_ckpt").value == first
    assert at.query_params["ckpt"] == first, "the URL is corrected"


def test_a_bad_parameter_in_the_url_falls_back_with_a_warning():
    at = open_page("explorer", {"ckpt": "tiny-n2", "pass": "9", "seed": "-3"})
    assert_clean(at)
    assert [w.split()[0] for w in texts(at.warning)] == ["Seed", "Pass"]
    assert at.slider(key="pass").value == 2 and at.number_input(key="seed").value == 0
    assert at.query_params["pass"] == "2" and at.query_params["seed"] == "0", "the URL is corrected"


@pytest.mark.parametrize("page", ["export"])
def test_a_bad_value_a_page_has_no_control_for_is_told_once_and_corrected(page):
    """A page writes back the values it has controls for; the others it uses (export draws the URL's window, pass
    and head) are written as it showed them, so the warning does not come back on every run. Pages that do not
    use a value leave it alone (test_app_pages: test_a_page_warns_only_of_the_url_values_it_has_controls_for)."""
    at = open_page(page, {"ckpt": "tiny-n2", "cmp": "tiny-n1", "window": "7", "pass": "99", "head": "5"})
    assert_clean(at)
    told = [w.split()[0] for w in texts(at.warning)]
    assert {"Window", "Pass", "Head"} <= set(told), told
    assert (at.query_params["window"], at.query_params["head"]) == ("0", "0")
    assert at.query_params["pass"] == "2" and at.query_params["ckpt"] == "tiny-n2"
    at.run()
    assert_clean(at)
    assert not at.warning, texts(at.warning)


def test_choosing_another_right_checkpoint_never_warns_of_the_pass():
    at = open_page("compare", {"ckpt": "tiny-n1", "cmp": "tiny-n2", "pass": "2"})
    assert_clean(at)
    at.selectbox(key="select_cmp").set_value("tiny-attn-only").run()  # N = 1 on both sides now: pass 2 is gone
    assert_clean(at)
    assert at.query_params["cmp"] == "tiny-attn-only" and not at.warning, texts(at.warning)
    assert at.query_params["pass"] == "2", "no pass slider at N = 1 on both sides: the URL's pass is left alone"
    assert not [s for s in at.slider if s.key == "pass"]
    at.selectbox(key="select_ckpt").set_value("tiny-n2").run()  # the left side: N = 2, the right tiny-n1's 1
    assert_clean(at)
    assert not at.warning, texts(at.warning)


def test_the_probe_labs_pass_is_kept_in_the_url():
    at = open_page("probes", {"ckpt": "tiny-n2", "pass": "2"})
    if not at.slider:  # no shipped probe table: fit one, as a user would
        at.button(key="fit_probes").click().run()
    at.slider(key="pass").set_value(1).run()
    assert_clean(at)
    assert at.query_params["pass"] == "1"
    click_to(at, "explorer")
    assert at.slider(key="pass").value == 1, "the pass follows the user"


def test_an_invalid_custom_example_shows_a_helpful_error():
    at = open_page("explorer", {"ckpt": "tiny-n2"})
    seeded = heatmap_z(at)
    at.text_area(key="custom_text").input("t1 0 1 banana 1").run()
    at.toggle(key="use_custom").set_value(True).run()
    assert not at.exception
    (error,) = texts(at.error)
    assert "does not parse" in error and "banana" in error and "valid tokens" in error
    assert heatmap_z(at) == seeded, "the page falls back to the seeded example"
    assert "Showing the seeded example (depth " in error, "and says so"


def test_a_valid_custom_example_is_traced():
    other_text = open_page("explorer", {"ckpt": "tiny-n2", "seed": "1"}).text_area(key="custom_text").value
    at = open_page("explorer", {"ckpt": "tiny-n2", "seed": "0"})
    seeded = heatmap_z(at)
    assert at.text_area(key="custom_text").value != other_text
    at.text_area(key="custom_text").input(other_text).run()
    at.toggle(key="use_custom").set_value(True).run()
    assert_clean(at)
    assert heatmap_z(at) != seeded, "the typed example is traced, not the seeded one"
    assert heatmap_z(at) == heatmap_z(open_page("explorer", {"ckpt": "tiny-n2", "seed": "1"}))


def test_a_custom_example_whose_answer_marks_no_longer_hold_runs_with_the_recomputed_answers():
    """Stale `[=a]` marks, as a Rule 110 example's are after its rows are edited (here the marks themselves are
    changed, so that every one is stale): the example runs, and the page says the marks were ignored (before, every
    mark had to be deleted by hand first). gsm and Depo also show answers as tokens: the test below."""
    seeded_text = open_page("explorer", {"ckpt": "tiny-n2", "seed": "1"}).text_area(key="custom_text").value
    stale = seeded_text.replace("[=0]", "[=2]").replace("[=1]", "[=0]").replace("[=2]", "[=1]")
    assert stale != seeded_text
    at = open_page("explorer", {"ckpt": "tiny-n2", "seed": "0"})
    at.text_area(key="custom_text").input(stale).run()
    at.toggle(key="use_custom").set_value(True).run()
    assert not at.exception and not at.error, texts(at.error)
    (info,) = [i for i in texts(at.info) if "answer mark" in i]
    assert "disagree with the problem: token " in info and "the `[=…]` marks are ignored" in info
    assert heatmap_z(at) == heatmap_z(open_page("explorer", {"ckpt": "tiny-n2", "seed": "1"})), "the same problem"


@pytest.mark.parametrize("name", ["tiny-gsm-n2", "tiny-depo-n2"])
def test_a_custom_example_whose_shown_answers_no_longer_hold_runs_with_the_problems_and_can_write_them_in(name):
    """gsm and Depo show each answer after its query, as a token later queries read: an edit that leaves a wrong
    one there (here every shown answer is swapped for the next one) runs with the problem's answers, says which
    tokens it changed, and a button writes the problem's answers into the text."""
    seeded_text = open_page("explorer", {"ckpt": name, "seed": "1"}).text_area(key="custom_text").value
    words = seeded_text.split()
    shown = [i + 1 for i, w in enumerate(words) if w.startswith("<ans>[=")]
    answers = [words[i] for i in shown]
    assert len(set(answers)) > 1, "the swap below must change something"
    for i, a in zip(shown, answers[1:] + answers[:1]):
        words[i] = a
    edited = " ".join(words)
    assert edited != seeded_text
    at = open_page("explorer", {"ckpt": name, "seed": "0"})
    at.text_area(key="custom_text").input(edited).run()
    at.toggle(key="use_custom").set_value(True).run()
    assert not at.exception and not at.error, texts(at.error)
    (info,) = [i for i in texts(at.info) if "not the problem's" in i]
    assert "the example runs with the problem's answers instead (token " in info and " → " in info
    assert heatmap_z(at) == heatmap_z(open_page("explorer", {"ckpt": name, "seed": "1"})), "the seeded problem"
    at.button(key="fill_answers").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert at.text_area(key="custom_text").value.split() == seeded_text.split()
    assert at.toggle(key="use_custom").value, "the typed example is still the one shown"
    assert not [i for i in texts(at.info) if "not the problem's" in i], "nothing left to write in"
    assert heatmap_z(at) == heatmap_z(open_page("explorer", {"ckpt": name, "seed": "1"}))


def test_compare_shows_both_checkpoints_with_passes_aligned():
    at = open_page("compare", {"ckpt": "tiny-n1", "cmp": "tiny-n2"})
    assert_clean(at)
    assert texts(at.subheader) == ["tiny-n1 (N = 1)", "tiny-n2 (N = 2)"]
    assert at.slider(key="pass").max == 2 and at.slider(key="pass").value == 2, "the deeper sleeper's last pass"
    n1, n2 = heatmap_z(at, "state_tiny-n1"), heatmap_z(at, "state_tiny-n2")
    at.slider(key="pass").set_value(1).run()
    assert_clean(at)
    assert heatmap_z(at, "state_tiny-n1") == n1, "N = 1 has one pass to show"
    assert heatmap_z(at, "state_tiny-n2") != n2


@pytest.mark.parametrize("left, right", [("tiny-n1", "tiny-n2"), ("tiny-n2", "tiny-n1")])
def test_compare_opens_on_the_sleep_model_with_the_most_different_n(left, right):
    at = open_page("compare", {"ckpt": left})
    assert_clean(at)
    assert texts(at.subheader)[:2] == [f"{left} (N = {left[-1]})", f"{right} (N = {right[-1]})"]


def test_compare_restores_a_pass_only_the_right_model_has():
    at = open_page("compare", {"ckpt": "tiny-n1", "cmp": "tiny-n2", "pass": "1"})
    assert at.slider(key="pass").value == 1
    at = open_page("compare", {"ckpt": "tiny-n1", "cmp": "tiny-n2", "pass": "2"})
    assert_clean(at)
    assert not at.warning
    assert at.slider(key="pass").value == 2


def test_compare_defaults_to_the_model_that_sleeps_most():
    at = open_page("compare", {"ckpt": "tiny-n1"})
    assert_clean(at)
    assert at.selectbox(key="select_cmp").value == "tiny-n2"


def test_compare_with_a_baseline_without_fast_weights():
    at = open_page("compare", {"ckpt": "tiny-n2", "cmp": "tiny-attn-only"})
    assert_clean(at)
    assert texts(at.subheader) == ["tiny-n2 (N = 2)", "tiny-attn-only (N = 1)"]
    figure(at, "state_tiny-n2")
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-state_tiny-attn-only")]


@pytest.mark.parametrize("ckpt, figures", [("tiny-n2", 5), ("tiny-attn-only", 2), (WAKE_LOOP[0], 5)])
def test_export_offers_every_figure_that_applies(ckpt: str, figures: int):
    at = open_page("export", {"ckpt": ckpt})
    options = at.selectbox(key="figure").options
    assert len(options) == figures
    opened_on = []
    for option in options:
        at.selectbox(key="figure").set_value(option).run()
        assert_clean(at)
        assert figure(at, "export_preview")["data"], f"{option!r} draws nothing"
        assert [b.key for b in at.get("download_button")] == ["dl_parquet", "dl_csv"]
        opened_on += [s.value for s in at.selectbox if s.key == "count"]
    assert opened_on and set(opened_on) == {"exact"}, "Rule 110 opens on the count it is judged on: whole rows"


@pytest.mark.parametrize("ckpt, counts", [("tiny-gsm-n2", 2), ("tiny-attn-only", 2), ("tiny-depo-n2", 4)])
def test_the_sweep_page_evaluates_each_test_time_n(ckpt: str, counts: int):
    from sleepcore.results import sweep_checkpoint

    at = open_page("sweep", {"ckpt": ckpt})
    assert_clean(at)
    trained = 2 if ckpt.endswith("n2") else 1
    assert at.multiselect(key="sweep_passes").value == list(range(1, 2 * trained + 1))
    assert [t["x"] for t in figure(at, "sweep_figure")["data"] if t["name"] == "depth 1"] == [
        list(range(1, 2 * trained + 1))
    ]
    at.multiselect(key="sweep_passes").set_value([3, 1])  # picked out of order: shown in order, as the URL has them
    at.select_slider(key="sweep_examples").set_value(25).run()
    assert_clean(at)
    assert at.multiselect(key="sweep_passes").value == [1, 3] and at.query_params["P"] == "1,3"
    assert len(at.radio[0].options) == counts  # every count the task reports (gsm: per answer, the question alone)
    fig = figure(at, "sweep_figure")
    lines = [t for t in fig["data"] if t["name"].startswith("depth ")]
    assert lines and all(t["x"] == [1, 3] for t in lines)
    root = __import__("os").environ["SLEEPCORE_CHECKPOINTS"]
    expected = sweep_checkpoint(f"{root}/{ckpt}", [1, 3], per_depth=25, seed=777)
    # the count a task is judged on opens first: the depth an answer really needs (gsm's question alone, Depo's
    # k mod n) where the task has one; Rule 110's whole rows right
    metric = "exact" if ckpt == "tiny-attn-only" else "effective"
    assert metric in expected[0] and at.radio[0].value == metric
    first_line = lines[0]
    depth = first_line["name"].split()[-1]
    assert first_line["y"] == [r[metric][depth]["acc"] for r in expected]  # the numbers `sleepcore sweep` gives
    table = at.dataframe[0].value
    assert table["passes"].to_list() == [1, 3]


def test_the_sweep_page_restores_its_passes_from_the_url_and_warns_on_bad_ones():
    at = open_page("sweep", {"ckpt": "tiny-n2", "P": "2,3", "examples": "25"})
    assert_clean(at)
    assert at.multiselect(key="sweep_passes").value == [2, 3] and at.select_slider(key="sweep_examples").value == 25
    assert [t["x"] for t in figure(at, "sweep_figure")["data"] if t["name"] == "depth 1"] == [[2, 3]]
    at = open_page("sweep", {"ckpt": "tiny-n2", "P": "0,99"})
    assert_clean(at)
    assert [w[:15] for w in texts(at.warning)] == ["Passes '0,99' a"]
    assert at.query_params["P"] == "1,2,3,4"  # the URL now holds what is shown


def test_choosing_test_time_passes_logs_no_streamlit_warning(monkeypatch: pytest.MonkeyPatch):
    """A widget given default= whose value a callback also sets (the sweep keeps its passes sorted) makes the server
    log a warning on every change. Streamlit checks this only under a running server: the check is let run here."""
    from streamlit.elements.lib import policies

    logged = []
    monkeypatch.setattr(policies.runtime, "exists", lambda: True)
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)  # once per process otherwise
    monkeypatch.setattr(policies._LOGGER, "warning", lambda message, *args, **_: logged.append(message % args))
    at = open_page("sweep", {"ckpt": "tiny-n2", "P": "1,2", "examples": "25"})
    at.multiselect(key="sweep_passes").set_value([3, 1]).run()
    assert_clean(at)
    assert at.multiselect(key="sweep_passes").value == [1, 3] and at.query_params["P"] == "1,3"
    assert not logged, logged


def test_overview_lists_every_checkpoint_with_its_card():
    at = open_page("overview")
    assert_clean(at)
    glance, listed = at.dataframe[0].value, at.dataframe[1].value
    assert listed["checkpoint"].to_list() == sorted(ALL)
    assert sorted(e.label for e in at.expander) == sorted([*ALL, f"The {len(ALL)} checkpoints"])
    # at a glance: one row per preset and seed, its deepest depth by the count its task is judged on, a column per
    # model; tiny is a Rule 110 preset, judged by whole rows
    doc = json.loads((Path(os.environ["SLEEPCORE_CHECKPOINTS"]) / "RESULTS.json").read_text())
    runs = {r["checkpoint"]: r for r in doc["results"]}
    deepest = max(runs["tiny-n2"]["exact"], key=int)
    tiny = glance[glance["preset"] == "tiny"]
    assert tiny["count, depth"].to_list() == [f"exact, {deepest}"]
    for name, col in [("tiny-n1", "N = 1"), ("tiny-n2", "N = 2"), ("tiny-attn-only", "attention only N = 1")]:
        assert tiny[col].to_list() == [runs[name]["exact"][deepest]["acc"]]
    shown = json.loads(at.dataframe[0].proto.columns)  # short headings, so the table fits; the name on hovering
    assert {c: (shown[c]["label"], shown[c]["help"]) for c in ("N = 1", "attention only N = 1")} == {
        "N = 1": ("N=1", "N = 1"),
        "attention only N = 1": ("attn N=1", "attention only N = 1"),
    }
    assert any("trained for 6 steps to test the app" in m for m in texts(at.markdown))
    # every count RESULTS.json holds is charted: gsm's question alone, Depo's k mod n and first query
    charts = sorted(c.proto.id.split("-acc_")[1] for c in at.get("plotly_chart") if "-acc_" in c.proto.id)
    assert charts == [
        "depo-mini_answers",
        "depo-mini_effective",
        "depo-mini_exact",
        "depo-mini_first",
        "gsm-mini_answers",
        "gsm-mini_effective",
        "tiny_answers",
        "tiny_exact",
    ]
    question = figure(at, "acc_gsm-mini_effective")
    assert question["layout"]["title"]["text"] == "Accuracy vs sleep passes (operations, the question alone)"
    assert sum("From RESULTS.json (8 per depth, seed 777)" in c for c in texts(at.caption)) == 3


@pytest.mark.usefixtures("with_a_broken_checkpoint")
@pytest.mark.parametrize("page", TITLES)
def test_a_broken_checkpoint_does_not_take_other_pages_down(page: str):
    at = open_page(page, {"ckpt": "tiny-n2"})
    assert not at.exception, f"the page raised: {texts(at.exception)}"
    expected = ["Checkpoint skipped: broken: "] if page == "overview" else []
    assert [e[: len("Checkpoint skipped: broken: ")] for e in texts(at.error)] == expected


@pytest.mark.usefixtures("with_a_broken_checkpoint")
@pytest.mark.parametrize(
    "page, params, which",
    [
        ("explorer", {"ckpt": "broken"}, "Checkpoint 'broken' cannot"),
        # the URL names no left checkpoint: the first by name is shown, and it is the broken one
        (
            "compare",
            {"cmp": "broken"},
            "Left checkpoint 'broken' (the first by name, as the URL names none that can be shown) cannot",
        ),
    ],
)
def test_a_broken_checkpoint_says_what_is_wrong(page: str, params: dict[str, str], which: str):
    at = open_page(page, params)
    assert not at.exception, f"the page raised: {texts(at.exception)}"
    (error,) = texts(at.error)
    assert error.startswith(f"{which} be loaded: ") and "config.json" in error


@pytest.mark.parametrize("ckpt", OTHER_TASKS)
def test_other_tasks_trace_seeded_and_custom_examples(ckpt: str):
    at = open_page("explorer", {"ckpt": ckpt, "seed": "2"})
    assert_clean(at)
    seeded = heatmap_z(at)
    text = open_page("explorer", {"ckpt": ckpt, "seed": "5"}).text_area(key="custom_text").value
    at.text_area(key="custom_text").input(text).run()
    at.toggle(key="use_custom").set_value(True).run()
    assert_clean(at)
    assert heatmap_z(at) != seeded, "the typed example (seed 5's text) is traced, not seed 2's"


@pytest.fixture(scope="module")
def a_doctored_sweep(app_checkpoints, tmp_path_factory):  # noqa: F811
    """tiny-n2's sweep (25 per depth, P = 1..4) with every accuracy of the count Rule 110 is judged on (exact) set
    to 0.123 and every other to 0.456, so a figure that shows 0.123 was drawn from the file, and by that count."""
    import shutil

    import polars as pl

    from sleepcore.cli import main

    folder = tmp_path_factory.mktemp("doctored") / "tiny-n2"
    shutil.copytree(app_checkpoints / "tiny-n2", folder)
    out = folder / "sweep.parquet"
    assert main(["sweep", str(folder), "--examples", "25", "--no-progress", "--out", str(out)]) == 0
    doctored = pl.when(pl.col("metric") == "exact").then(pl.lit(0.123)).otherwise(pl.lit(0.456))
    pl.read_parquet(out).with_columns(acc=doctored).write_parquet(out)
    return folder


@pytest.fixture
def with_a_shipped_sweep(app_checkpoints, a_doctored_sweep, tmp_path, monkeypatch):  # noqa: F811
    """The app's checkpoints, with tiny-n2 replaced by a copy that ships `a_doctored_sweep`'s sweep."""
    import shutil

    import streamlit as st

    for name in ALL:
        if name != "tiny-n2":
            (tmp_path / name).symlink_to(app_checkpoints / name)
    shutil.copytree(a_doctored_sweep, tmp_path / "tiny-n2")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    st.cache_data.clear()
    yield tmp_path / "tiny-n2" / "sweep.parquet"
    st.cache_data.clear()


def test_the_sweep_page_reads_the_shipped_sweep_and_evaluates_only_what_it_lacks(with_a_shipped_sweep):
    at = open_page("sweep", {"ckpt": "tiny-n2"})
    assert_clean(at)
    assert at.select_slider(key="sweep_examples").value == 25  # the shipped sweep's count opens first
    lines = [t for t in figure(at, "sweep_figure")["data"] if t["name"].startswith("depth ")]
    assert lines and all(t["x"] == [1, 2, 3, 4] and t["y"] == [0.123] * 4 for t in lines)
    assert "P = 1, 2, 3, 4 come from the sweep shipped beside the checkpoint" in at.caption[0].value
    # the command that writes it again, into the folder served (not the repository's checkpoints/), and says which
    served = with_a_shipped_sweep.parent.parent
    assert (
        f"reproduce: `SLEEPCORE_CHECKPOINTS={served} sleepcore sweep tiny-n2 --examples 25 --seed 777 --out "
        f"{with_a_shipped_sweep}`)"
    ) in at.caption[0].value
    at.multiselect(key="sweep_passes").set_value([2, 5]).run()  # P = 5 is not in the file: evaluated now
    assert_clean(at)
    lines = [t for t in figure(at, "sweep_figure")["data"] if t["name"].startswith("depth ")]
    assert all(t["x"] == [2, 5] and t["y"][0] == 0.123 and t["y"][1] != 0.123 for t in lines)
    at.select_slider(key="sweep_examples").set_value(50).run()  # another count: nothing comes from the file
    assert all(0.123 not in t["y"] for t in figure(at, "sweep_figure")["data"] if t["name"].startswith("depth "))
    assert "come from the sweep shipped" not in at.caption[0].value


def test_the_export_page_offers_the_shipped_sweep(with_a_shipped_sweep):
    option = "Accuracy vs test-time passes (the shipped sweep)"
    assert option not in open_page("export", {"ckpt": "tiny-n1"}).selectbox(key="figure").options
    at = open_page("export", {"ckpt": "tiny-n2"})
    at.selectbox(key="figure").set_value(option).run()
    assert_clean(at)
    lines = [t for t in figure(at, "export_preview")["data"] if t["name"].startswith("depth ")]
    assert lines and all(t["x"] == [1, 2, 3, 4] and t["y"] == [0.123] * 4 for t in lines)


def test_the_export_page_says_why_a_damaged_shipped_sweep_is_not_offered(with_a_shipped_sweep):
    import polars as pl

    pl.read_parquet(with_a_shipped_sweep).with_columns(metric=pl.lit("bogus")).write_parquet(with_a_shipped_sweep)
    at = open_page("export", {"ckpt": "tiny-n2"})
    assert not at.exception, [e.value for e in at.exception]
    assert "Accuracy vs test-time passes (the shipped sweep)" not in at.selectbox(key="figure").options
    (warning,) = texts(at.warning)
    assert warning.startswith("The test-time figure is not offered: ") and "it needs 'answers'" in warning


def test_the_sweep_page_warns_about_an_unusable_shipped_sweep_and_evaluates(with_a_shipped_sweep):
    with_a_shipped_sweep.write_bytes(b"not parquet")
    at = open_page("sweep", {"ckpt": "tiny-n2"})
    assert_clean(at)
    (warning,) = texts(at.warning)
    assert warning.startswith("The sweep shipped with this checkpoint is not used: ")
    assert "is not a readable Parquet table" in warning
    assert (
        f"write it again with: SLEEPCORE_CHECKPOINTS={with_a_shipped_sweep.parent.parent} sleepcore sweep tiny-n2 --out"
        in warning
    )
    lines = [t for t in figure(at, "sweep_figure")["data"] if t["name"].startswith("depth ")]
    assert lines and all(t["x"] == [1, 2, 3, 4] for t in lines)


def test_export_without_a_format_asks_for_one():
    at = open_page("export", {"ckpt": "tiny-n2"})
    at.segmented_control(key="fmt").set_value(None).run()
    assert_clean(at)
    assert any("Pick a figure format" in i for i in texts(at.info))
    assert not [b for b in at.button if b.key == "render"]


def test_the_typed_example_follows_the_seeded_one_until_edited():
    at = open_page("explorer", {"ckpt": "tiny-n2", "seed": "0"})
    seed0 = at.text_area(key="custom_text").value
    at.number_input(key="seed").set_value(1).run()
    seed1 = open_page("explorer", {"ckpt": "tiny-n2", "seed": "1"}).text_area(key="custom_text").value
    assert seed0 != seed1 and at.text_area(key="custom_text").value == seed1
    at.text_area(key="custom_text").input(seed0).run()
    at.toggle(key="use_custom").set_value(True).run()
    assert_clean(at)
    assert at.text_area(key="custom_text").value == seed0, "an edit stays while the seeded example does not change"
    at.selectbox(key="select_ckpt").set_value("tiny-depo-n2").run()
    assert_clean(at)  # another task's text: no parse error from the old one
    assert at.text_area(key="custom_text").value == session_render("tiny-depo-n2", at)


def test_the_view_follows_the_user_to_another_page():
    """Streamlit clears the URL's parameters on a page change; the checkpoint and example carry over."""
    at = open_page("explorer", {"ckpt": "tiny-depo-n2", "seed": "3", "layer": "1"})
    assert_clean(at)
    for page in ("probes", "sweep", "compare", "export", "explorer"):
        click_to(at, page)
        assert not at.exception, page
        assert at.selectbox(key="select_ckpt").value == "tiny-depo-n2", page
        assert at.query_params["ckpt"] == "tiny-depo-n2" and at.query_params["seed"] == "3", page
    assert at.number_input(key="seed").value == 3
    at.switch_page("views/probes.py")
    at.query_params.update({"ckpt": "tiny-n2"})  # a URL of its own is taken as it is
    at.run()
    assert at.selectbox(key="select_ckpt").value == "tiny-n2"


def back(at: AppTest, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]) -> AppTest:
    """The browser's Back button: it restores an older URL and reruns, while the widgets still hold the view the user
    left. Streamlit marks that run as history navigation, which AppTest cannot; app.data.url_wins is that mark."""
    from app import data

    at.query_params.clear()
    at.query_params.update(params)
    with monkeypatch.context() as m:
        m.setattr(data, "url_wins", lambda: True)
        return at.run()


def test_url_wins_reads_streamlits_history_navigation_mark(monkeypatch: pytest.MonkeyPatch):
    """The tests above stand in for the mark; this one checks the mark itself: Streamlit's run context carries it
    (a Streamlit that renamed it would fail here, not silently turn Back off)."""
    from types import SimpleNamespace

    from streamlit.runtime.scriptrunner_utils.script_run_context import ScriptRunContext

    from app import data

    assert "is_history_navigation" in {f.name for f in __import__("dataclasses").fields(ScriptRunContext)}
    monkeypatch.setattr(data.st, "session_state", {})
    for mark in (True, False):
        monkeypatch.setattr(data, "get_script_run_ctx", lambda mark=mark: SimpleNamespace(is_history_navigation=mark))
        assert data.url_wins() is mark
    monkeypatch.setattr(data.st, "session_state", {"new_checkpoint": True})
    assert data.url_wins(), "and after the user chose another checkpoint"


def test_back_restores_the_view_the_url_names(monkeypatch: pytest.MonkeyPatch):
    at = open_page("explorer", {"ckpt": "tiny-n2", "pass": "1", "seed": "3"})
    before = dict(at.query_params)
    at.slider(key="pass").set_value(2).run()
    at.number_input(key="seed").set_value(5).run()
    at.selectbox(key="head").set_value(1).run()
    assert (at.query_params["pass"], at.query_params["seed"], at.query_params["head"]) == ("2", "5", "1")

    at.query_params.update(before)  # an ordinary rerun: the widgets win, and write their view over the URL
    at.run()
    assert at.query_params["pass"] == "2" and at.slider(key="pass").value == 2

    back(at, monkeypatch, before)
    assert_clean(at)
    assert at.slider(key="pass").value == 1 and at.number_input(key="seed").value == 3
    assert at.selectbox(key="head").value == 0
    assert at.query_params == before, "the URL the browser went back to stays"
    assert "pass 1" in json.dumps(figure(at, "state_heatmap")["layout"]["title"])


def test_back_restores_the_checkpoint_and_its_view(monkeypatch: pytest.MonkeyPatch):
    at = open_page("explorer", {"ckpt": "tiny-n2", "pass": "1"})
    before = dict(at.query_params)
    at.selectbox(key="select_ckpt").set_value("tiny-depo-n2").run()
    assert at.query_params["ckpt"] == "tiny-depo-n2" and at.query_params["pass"] == "2"
    back(at, monkeypatch, before)
    assert_clean(at)
    assert at.selectbox(key="select_ckpt").value == "tiny-n2" and at.slider(key="pass").value == 1
    assert at.query_params == before
    sweep = open_page("sweep", {"ckpt": "tiny-n2", "P": "1,2", "examples": "25"})
    shown = dict(sweep.query_params)
    sweep.multiselect(key="sweep_passes").set_value([1]).run()
    assert sweep.query_params["P"] == "1"
    back(sweep, monkeypatch, shown)
    assert sweep.multiselect(key="sweep_passes").value == [1, 2] and sweep.query_params == shown


def test_pages_reach_the_url_only_through_app_data():
    """A page that wrote st.query_params would add a history entry per write again, and a write after st.stop()
    never reaches the browser: the pages use data.url() and data.stop(), which send the URL once per run. Read from
    the code's syntax tree, so an alias (`qp = st.query_params`, `from streamlit import stop`) is caught too."""
    import ast

    app = Path(APP).parent
    for f in sorted([*app.glob("*.py"), *app.glob("views/*.py")]):
        if f.name in ("data.py", "main.py", "bench.py"):
            continue
        for node in ast.walk(ast.parse(f.read_text(), filename=str(f))):
            if isinstance(node, ast.Attribute):  # st.query_params, st.stop: anything but data.stop
                ours = isinstance(node.value, ast.Name) and node.value.id == "data"
                bad = node.attr == "query_params" or node.attr == "stop" and not ours
            elif isinstance(node, ast.ImportFrom) and node.module == "streamlit":
                bad = bool({"query_params", "stop"} & {a.name for a in node.names})
            else:
                bad = False
            assert not bad, f"{f.name}:{node.lineno} reaches the URL or stops without app.data"


def test_a_typed_example_stays_across_pages():
    """Streamlit resets a widget on a page that does not draw it, and on another page that does."""
    at = open_page("explorer", {"ckpt": "tiny-n2", "seed": "0"})
    seed1 = open_page("explorer", {"ckpt": "tiny-n2", "seed": "1"}).text_area(key="custom_text").value
    at.text_area(key="custom_text").input(seed1).run()
    at.toggle(key="use_custom").set_value(True).run()
    for page in ("sweep", "compare", "export", "explorer"):
        click_to(at, page)
        assert_clean(at)
        if page != "sweep":  # the sweep page types no example
            assert at.text_area(key="custom_text").value == seed1, page
            assert at.toggle(key="use_custom").value, page
    at.number_input(key="seed").set_value(2).run()  # another seeded example: the text follows it again
    assert at.text_area(key="custom_text").value == session_render("tiny-n2", at)


@pytest.mark.usefixtures("checkpoints_like")
def test_a_second_model_of_one_preset_n_and_seed_is_named_not_a_crash():
    """A run trained into checkpoints/ beside a shipped one (same preset, N, seed), or a copy: one line per seed."""
    root = Path(os.environ["SLEEPCORE_CHECKPOINTS"])  # the checkpoints_like folder
    (copy := root / "my-tiny-n2").mkdir()
    for f in ("config.json", "model.safetensors"):
        (copy / f).symlink_to(root / "tiny-n2" / f)
    note = "my-tiny-n2 is not drawn: it has the preset (tiny), N = 2 and training seed 0 of tiny-n2"
    for page, params in (("overview", {}), ("export", {"ckpt": "my-tiny-n2"}), ("export", {"ckpt": "tiny-n1"})):
        at = open_page(page, params)
        assert not at.exception, (page, texts(at.exception))
        assert any(i.startswith(note) for i in texts(at.info)), (page, texts(at.info))
    lines = [t["name"] for t in figure(at, "export_preview")["data"]]
    assert lines and all("my-tiny" not in n for n in lines)


@pytest.mark.usefixtures("checkpoints_like")
def test_export_says_when_no_evaluation_is_stored():
    root = Path(os.environ["SLEEPCORE_CHECKPOINTS"])  # the checkpoints_like folder
    (root / "RESULTS.json").unlink()
    (solo := root / "solo").mkdir()
    info = json.loads((root / "tiny-depo-n2" / "config.json").read_text())
    del info["eval"]  # as a run stopped before its end-of-training evaluation
    (solo / "config.json").write_text(json.dumps(info))
    (solo / "model.safetensors").symlink_to((root / "tiny-depo-n2").resolve() / "model.safetensors")
    (root / "tiny-depo-n2").unlink()  # the only other model of its preset
    at = open_page("export", {"ckpt": "solo"})
    assert not at.exception and not at.error, texts(at.exception) + texts(at.error)
    assert any(
        i.startswith("No evaluation is stored for solo or another checkpoint of its preset") for i in texts(at.info)
    )
    other = at.selectbox(key="figure").options[1]
    at.selectbox(key="figure").set_value(other).run()  # the other figures still draw
    assert_clean(at)
    assert figure(at, "export_preview")["data"]


def test_a_carried_view_the_next_checkpoint_lacks_is_clamped_without_a_warning():
    at = open_page("compare", {"ckpt": "tiny-n1", "cmp": "tiny-n2"})
    assert at.query_params["pass"] == "2"  # the deeper sleeper's last pass
    click_to(at, "explorer")
    assert_clean(at)
    assert not at.warning, texts(at.warning)  # tiny-n1 has one pass; the user typed no pass=2
    assert at.query_params["ckpt"] == "tiny-n1" and at.query_params["pass"] == "1"
    typed = open_page("explorer", {"ckpt": "tiny-n1", "pass": "2"})  # a typed URL is still told
    assert any("Pass '2' does not exist" in w for w in texts(typed.warning))


def test_another_checkpoint_opens_on_its_own_pass_and_head_whatever_the_widgets_held():
    at = open_page("explorer", {"ckpt": "tiny-n2"})
    at.slider(key="pass").set_value(1).run()
    at.selectbox(key="head").set_value(1).run()
    assert at.query_params["pass"] == "1" and at.query_params["head"] == "1"
    at.selectbox(key="select_ckpt").set_value("tiny-depo-n2").run()
    assert_clean(at)
    assert at.slider(key="pass").value == 2 and at.selectbox(key="head").value == 0, "its defaults: pass N, head 0"
    assert at.query_params["pass"] == "2" and at.query_params["head"] == "0"


@pytest.mark.usefixtures("checkpoints_like")
def test_the_app_follows_a_checkpoint_that_changed_on_disk():
    """Trained again, resumed or replaced under the same name: every cache is keyed by name, so they are cleared."""
    root = Path(os.environ["SLEEPCORE_CHECKPOINTS"])  # the checkpoints_like folder
    at = open_page("explorer", {"ckpt": "tiny-n1"})
    assert not [s for s in at.slider if s.key == "pass"], "N = 1: no pass slider"
    (root / "tiny-n1").unlink()
    (root / "tiny-n1").symlink_to((root / "tiny-n2").resolve())  # a run of N = 2 shipped under the same name
    at.run()
    assert_clean(at)
    assert at.slider(key="pass").max == 2


def test_the_probe_lab_says_when_the_example_has_no_fact_of_that_depth():
    at = open_page("probes", {"ckpt": "tiny-n2", "depth": "1"})
    at.select_slider(key="probe_examples").set_value(64)
    at.button(key="fit_probes").click().run()
    deepest = at.selectbox(key="fact_depth").options[-1]
    at.selectbox(key="fact_depth").set_value(deepest).run()
    at.button(key="query").click().run()
    assert_clean(at)  # not an error: a question this example cannot answer
    assert any(
        i.endswith("pick a smaller fact depth, or an example of a larger question depth.") for i in texts(at.info)
    )


def session_render(name: str, at: AppTest) -> str:
    from analysis import session

    task = session.load(name).task
    return task.render(session.seeded_example(task, at.selectbox(key="depth").value, at.number_input(key="seed").value))


def test_another_checkpoint_opens_on_its_own_view():
    at = open_page("explorer", {"ckpt": "tiny-n2", "pass": "2", "window": "0"})
    at.selectbox(key="select_ckpt").set_value("tiny-n1").run()
    assert_clean(at)
    assert not at.warning, f"the old checkpoint's view is not the user's mistake: {texts(at.warning)}"
    assert at.query_params["ckpt"] == "tiny-n1" and at.query_params["pass"] == "1"
    at.selectbox(key="select_ckpt").set_value("tiny-n2").run()
    assert_clean(at)
    assert at.slider(key="pass").value == 2, "N = 2 opens on its last pass"


def test_compare_follows_the_left_checkpoint_to_another_task():
    at = open_page("compare", {"ckpt": "tiny-n2", "cmp": "tiny-n1"})
    at.selectbox(key="select_ckpt").set_value("tiny-depo-n2").run()
    assert_clean(at)
    assert not at.warning, texts(at.warning)
    # tiny-depo-n2 is the only Depo model: nothing to compare it with, rather than itself
    assert "cmp" not in at.query_params and not [s for s in at.selectbox if s.key == "select_cmp"]
    said = "'tiny-n1' is trained on rule110, 'tiny-depo-n2' on depo, and tiny-depo-n2 is the only checkpoint trained"
    assert any(said in i and "nothing to compare it with" in i for i in texts(at.info)), texts(at.info)


def test_the_cache_stamp_leaves_out_temporary_files_and_survives_a_missing_root(tmp_path):
    """refresh_if_changed clears every cache when a stamped file changes: a write's temporary dotfile must not."""
    from app.data import _files_below

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "config.json").write_text("{}")
    (tmp_path / "a" / ".config.json.x1y2").write_text("{")  # atomic_write's temporary file
    (tmp_path / ".sleepcore-check.abc").write_text("")  # check_out's probe
    (tmp_path / "RESULTS.json").write_text("{}")
    assert _files_below(tmp_path) == [tmp_path / "RESULTS.json", tmp_path / "a" / "config.json"]
    assert _files_below(tmp_path / "gone") == []
