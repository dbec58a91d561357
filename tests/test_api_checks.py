"""The analysis layer's entry points refuse bad input with a ValueError naming what is valid, and its figures explain
every colour they use. Untrained tiny models only: no checkpoint is trained or read, so these run in seconds."""

import pytest
import torch
from test_figures import eval_result

from analysis import figures, session
from analysis.animation import sleep_animation
from sleepcore.checkpoint import checkpoint_info
from sleepcore.model import SleepModel
from sleepcore.presets import build
from sleepcore.tasks import get_task
from sleepcore.trace import record_trace, sample_examples

EXAMPLES = 2


@pytest.fixture(scope="module")
def loaded():
    """A tiny Rule 110 sleep model (layers attn, fw; 2 fast-weight heads; N = 2), untrained, as session.load gives."""
    configs = build("tiny", 2, "hybrid")
    torch.manual_seed(0)
    model = SleepModel(configs[0], configs[1]).eval()
    task = get_task(configs[2].name, **configs[2].params)
    return session.Loaded("tiny", model, checkpoint_info(*configs), task, "0" * 64)


@pytest.fixture(scope="module")
def trace(loaded):
    examples = sample_examples(loaded.task, EXAMPLES, seed=0)
    return record_trace(loaded.model, loaded.info, examples, checkpoint="tiny", seed=0, anytime=False)


# --- 1. accuracy_vs_passes explains the depth colours without any hybrid line -----------------------------------


def legend_entries(fig) -> dict[str, object]:
    """Name -> trace of what the legend shows: a trace with showlegend left on and at least one point (Plotly
    leaves a trace with no points out of the legend)."""
    return {t.name: t for t in fig.data if t.showlegend is not False and t.x is not None and len(t.x) > 0}


def depth_colours(fig) -> dict[int, str]:
    """Depth -> the colour of the baseline markers drawn at that depth."""
    return {t.meta["depth"]: t.marker.color for t in fig.data if isinstance(t.meta, dict) and "variant" in t.meta}


def test_baselines_alone_have_their_depth_colours_named_in_the_legend():
    rows = [eval_result("w4", 4, "wake-loop", {1: 0.6, 4: 0.3}), eval_result("a1", 1, "attn-only", {1: 0.12, 4: 0.13})]
    fig = figures.accuracy_vs_passes(figures.results_table(rows))
    shown = legend_entries(fig)
    colours = depth_colours(fig)
    assert set(colours) == {1, 4}
    for depth, colour in colours.items():
        key = shown[f"depth {depth}"]  # KeyError before the fix: the legend named the variants only
        assert key.marker.color == colour
        assert all(v is None for v in key.x) and all(v is None for v in key.y)  # a legend entry, not data
    assert {"wake-loop", "attn-only"} <= set(shown)


def test_a_depth_without_a_hybrid_line_gets_a_legend_entry_and_the_others_keep_their_lines():
    rows = [eval_result("h1", 1, "hybrid", {1: 0.9}), eval_result("a1", 1, "attn-only", {1: 0.12, 4: 0.13})]
    fig = figures.accuracy_vs_passes(figures.results_table(rows))
    shown = legend_entries(fig)
    assert list(shown["depth 1"].y) == [0.9] and shown["depth 1"].mode == "lines+markers"
    assert shown["depth 4"].marker.color == depth_colours(fig)[4] and list(shown["depth 4"].y) == [None]


def test_with_hybrid_lines_the_figure_has_no_extra_legend_entries():
    rows = [eval_result("h1", 1, "hybrid", {1: 0.9, 4: 0.3}), eval_result("a1", 1, "attn-only", {1: 0.12, 4: 0.13})]
    fig = figures.accuracy_vs_passes(figures.results_table(rows))
    assert [t.name for t in fig.data] == ["depth 1", "depth 4", "attn-only", "attn-only, depth 1", "attn-only, depth 4"]
    assert not any(isinstance(t.meta, dict) and t.meta.get("legend_only") for t in fig.data)


# --- 2. trace_example caps the test-time N as the CLI does ----------------------------------------------------------


@pytest.mark.parametrize("passes", [65])  # not a huge N: unrefused, it would run for hours
def test_trace_example_refuses_more_passes_than_the_cli_allows(loaded, passes):
    example = session.seeded_example(loaded.task, 1, seed=0)
    with pytest.raises(ValueError, match=rf"passes must be at most 64 \(test-time N\); got \[{passes}\]"):
        session.trace_example(loaded, example, passes=passes)


@pytest.mark.parametrize("passes", [0, -1, True, 2.5])
def test_trace_example_refuses_a_passes_that_is_not_a_positive_integer(loaded, passes):
    example = session.seeded_example(loaded.task, 1, seed=0)
    with pytest.raises(ValueError, match=r"passes must be integers >= 1 \(test-time N\)"):
        session.trace_example(loaded, example, passes=passes)


def test_trace_example_still_runs_at_a_valid_n(loaded):
    example = session.seeded_example(loaded.task, 1, seed=0)
    assert session.trace_example(loaded, example, passes=3).meta["passes"] == 3
    assert session.trace_example(loaded, example).meta["passes"] == 2  # the trained N


# --- 3. sleep_animation names the valid layers, heads and examples --------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, says",
    [
        (dict(layer=1, head=5), r"head must be an integer from 0 to 1 \(this trace has 2 heads\); got 5"),
        (dict(layer=1, head=-1), r"head must be an integer from 0 to 1 \(this trace has 2 heads\); got -1"),
        (dict(layer=1, head=True), r"head must be an integer from 0 to 1"),
        (dict(layer=1, head=0, example=-1), rf"example must be an integer from 0 to {EXAMPLES - 1} .*got -1"),
        (dict(layer=1, head=0, example=EXAMPLES), rf"example must be an integer from 0 to {EXAMPLES - 1}"),
        (dict(layer=0, head=0), r"layer must be one of the fast-weight layers \[1\]; got 0"),  # layer 0 is attention
        (dict(layer=7, head=0), r"layer must be one of the fast-weight layers \[1\]; got 7"),
        (dict(layer=-1, head=0), r"layer must be one of the fast-weight layers \[1\]; got -1"),
    ],
)
def test_sleep_animation_refuses_what_the_trace_does_not_hold(trace, kwargs, says):
    with pytest.raises(ValueError, match=says):
        sleep_animation(trace, **kwargs)


def test_sleep_animation_still_draws_every_head_and_example(trace):
    for head in (0, 1):
        fig = sleep_animation(trace, 1, head, example=EXAMPLES - 1)
        expected = trace.state(0, 1, 1)[EXAMPLES - 1, head].numpy()
        assert torch.allclose(torch.tensor(fig.frames[0].data[0].z), torch.tensor(expected))


# --- 4. query_fact names fact_depth and its range -------------------------------------------------------------------


@pytest.mark.parametrize("fact_depth", [-1, 9, True, 1.0])
def test_query_fact_names_fact_depth_and_its_valid_range(loaded, fact_depth):
    example = session.seeded_example(loaded.task, 2, seed=3)
    with pytest.raises(ValueError, match=r"^fact_depth must be an integer from 0 to 8 .*rule110.*; got") as e:
        session.query_fact(loaded, example, layer=1, pass_=2, fact_depth=fact_depth, examples=8)
    assert not isinstance(e.value, session.NoSuchFact)  # a wrong argument, not a question for another example


@pytest.mark.parametrize("bad", [-1, 2**63, 1.5, True, "7"])
def test_the_api_takes_the_seeds_the_cli_takes(bad, tmp_path):
    """evaluate_checkpoint, sweep_checkpoint and trace_checkpoint refuse what `--seed` refuses, before any loading
    (the checkpoint here does not even exist)."""
    from sleepcore.results import evaluate_checkpoint, sweep_checkpoint
    from sleepcore.trace import trace_checkpoint

    for call in (
        lambda: evaluate_checkpoint(tmp_path / "none", seed=bad),
        lambda: sweep_checkpoint(tmp_path / "none", [1], seed=bad),
        lambda: trace_checkpoint(tmp_path / "none", seed=bad),
    ):
        with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*63 - 1 .*; got"):
            call()
