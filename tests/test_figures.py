"""Figures hold the data they are given, in the talk template; export writes valid SVG, PDF and PNG files."""

import os
import struct
import xml.etree.ElementTree as ET

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
import pytest
import torch

from analysis import export, figures
from analysis.export import ExportError, export_figure, export_table, find_browser


def by_name(fig: go.Figure, name: str) -> list:
    return [t for t in fig.data if t.name == name]


# --- the template ---------------------------------------------------------------------------------------------


def test_talk_template_is_large_colour_blind_safe_and_registered():
    t = figures.TALK.layout
    assert pio.templates["sleepcore-talk"] == figures.TALK
    sizes = [t.font.size, t.title.font.size, t.legend.font.size, t.hoverlabel.font.size]
    sizes += [t.xaxis.tickfont.size, t.xaxis.title.font.size, t.yaxis.tickfont.size, t.yaxis.title.font.size]
    assert min(sizes) >= 20
    assert list(t.colorway) == figures.OKABE_ITO
    assert t.paper_bgcolor == t.plot_bgcolor == "white"
    assert (t.width, t.height) == (1280, 720)


# --- results ----------------------------------------------------------------------------------------------------


def eval_result(name, passes, variant, accs, trained=None):
    cells = {str(d): {"acc": a, "lo": a - 0.05, "hi": a + 0.04, "correct": 0, "n": 100} for d, a in accs.items()}
    return {
        "checkpoint": name,
        "passes": passes,
        "trained_passes": trained or passes,
        "variant": variant,
        "task": "depo",
        "chance": {d: 0.125 for d in cells},
        "answers": cells,
        "exact": {},
    }


RESULTS = [
    eval_result("h1", 1, "hybrid", {1: 0.9, 4: 0.3}),
    eval_result("h2", 2, "hybrid", {1: 0.95, 4: 0.5}),
    eval_result("h4", 4, "hybrid", {1: 0.97, 4: 0.8}),
    eval_result("h4", 2, "hybrid", {1: 0.5, 4: 0.2}, trained=4),  # test-time N ≠ trained N: not in the headline
    eval_result("a1", 1, "attn-only", {1: 0.12, 4: 0.13}),
]


def test_results_table_flattens_evaluations():
    df = figures.results_table(RESULTS)
    assert df.height == 10
    assert {"checkpoint", "variant", "passes", "depth", "acc", "lo", "hi"} <= set(df.columns)
    row = df.filter((pl.col("checkpoint") == "h2") & (pl.col("depth") == 4)).row(0, named=True)
    assert (row["acc"], row["lo"], row["hi"], row["chance"]) == (0.5, 0.45, 0.54, 0.125)


def test_accuracy_vs_passes_has_one_line_per_depth():
    fig = figures.accuracy_vs_passes(figures.results_table(RESULTS))
    for depth, accs in ((1, [0.9, 0.95, 0.97]), (4, [0.3, 0.5, 0.8])):
        (line,) = by_name(fig, f"depth {depth}")
        assert list(line.x) == [1, 2, 4] and list(line.y) == accs
        assert list(line.error_y.array) == pytest.approx([0.04] * 3)
        assert list(line.error_y.arrayminus) == pytest.approx([0.05] * 3)
    assert by_name(fig, "attn-only, depth 1")[0].y == (0.12,)
    assert by_name(fig, "attn-only, depth 4")[0].y == (0.13,)
    assert [t.showlegend for t in fig.data if t.legendgroup == "attn-only"] == [None, False, False]
    assert fig.layout.template.layout.font.size >= 20


def test_a_seed_replica_is_an_open_marker_beside_the_line_of_the_first_seed():
    replica = {**eval_result("h4s1", 4, "hybrid", {1: 0.6, 4: 0.1}), "train_seed": 1}
    fig = figures.accuracy_vs_passes(figures.results_table(RESULTS + [replica]))
    line = next(t for t in fig.data if t.name == "depth 4")
    assert list(line.x) == [1, 2, 4] and line.y[-1] == pytest.approx(0.8)  # the line keeps the seed-0 model
    marks = [t for t in fig.data if t.meta and t.meta.get("replica")]
    assert [(m.meta["depth"], list(m.x), list(m.y)) for m in marks] == [(1, [3.92], [0.6]), (4, [3.92], [0.1])]
    assert marks[0].marker.symbol == "circle-open" and any(t.name == "other seeds" for t in fig.data)


def test_an_n_trained_only_with_another_seed_is_on_that_seeds_dotted_line():
    """Seed 0 at N = 1, seed 1 at N = 1 and 4 (a continued preset): the solid line is seed 0's alone; seed 1's
    two models make one dotted line, never joined to seed 0's."""
    rows = [
        {**eval_result("h1", 1, "hybrid", {4: 0.3}), "train_seed": 0},
        {**eval_result("h1s1", 1, "hybrid", {4: 0.2}), "train_seed": 1},
        {**eval_result("h4s1", 4, "hybrid", {4: 0.9}), "train_seed": 1},
    ]
    fig = figures.accuracy_vs_passes(figures.results_table(rows))
    line = next(t for t in fig.data if t.name == "depth 4")
    assert list(line.x) == [1] and list(line.y) == [0.3]
    (seed1,) = [t for t in fig.data if t.meta and t.meta.get("replica")]
    assert seed1.name == "seed 1, depth 4" and list(seed1.x) == [0.92, 3.92] and list(seed1.y) == [0.2, 0.9]
    assert seed1.mode == "lines+markers" and seed1.line.dash == "dot"


def test_every_count_of_an_evaluation_is_charted_under_its_own_name():
    """gsm's headline is the question alone (its effective depth); Depo's, the first query: each is a metric."""
    gsm = {
        **eval_result("g4", 4, "hybrid", {1: 0.9, 2: 0.8}),
        "effective": {"1": {"acc": 0.7, "lo": 0.6, "hi": 0.8, "n": 50}},
        "effective_name": "operations, the question alone",
        "first": {"1": {"acc": 0.6, "lo": 0.5, "hi": 0.7, "n": 50}},
    }
    df = figures.results_table([gsm])
    counts = dict(df.group_by("metric").agg(pl.col("metric_label").first(), pl.len()).select("metric", "len").rows())
    assert counts == {"answers": 2, "effective": 1, "first": 1}
    labels = dict(df.select("metric", "metric_label").unique().rows())
    assert labels["effective"] == "operations, the question alone" and labels["answers"] == "per answer"
    fig = figures.accuracy_vs_passes(df, metric="effective")
    assert fig.layout.title.text == "Accuracy vs sleep passes (operations, the question alone)"
    assert by_name(fig, "depth 1")[0].y == (0.7,) and not by_name(fig, "depth 2")
    assert by_name(figures.accuracy_vs_passes(df, metric="first"), "depth 1")[0].y == (0.6,)


def test_accuracy_vs_passes_refuses_two_models_at_one_n():
    df = figures.results_table(RESULTS + [eval_result("h2b", 2, "hybrid", {1: 0.9, 4: 0.4})])
    with pytest.raises(ValueError, match="several hybrid results"):
        figures.accuracy_vs_passes(df)


# --- probes, state, attention ----------------------------------------------------------------------------------


def probes_table() -> pl.DataFrame:
    rows = []
    for layer in (1, 3):
        for depth in (1, 2):
            for p in (1, 2, 3):
                for seed in (0, 1):
                    acc = 0.1 * p + 0.01 * depth + 0.1 * seed + 0.001 * layer
                    rows.append(
                        dict(
                            checkpoint="c",
                            task="depo",
                            fact="successor",
                            fact_depth=depth,
                            layer=layer,
                            **{"pass": p},
                            probe="linear",
                            seed=seed,
                            acc=acc,
                            acc_lo=acc - 0.05,
                            acc_hi=acc + 0.05,
                            control_acc=0.1,
                            selectivity=acc - 0.1,
                            baseline="trained",
                            n_train=100,
                            n_test=50,
                            chance=0.125,
                        )
                    )
    return pl.DataFrame(rows)


def test_probe_curves_average_seeds_with_bands_and_dashed_controls():
    fig = figures.probe_curves(probes_table())
    lines = [t for t in fig.data if t.name == "depth 2" and t.mode == "lines+markers"]
    assert len(lines) == 2  # one per layer panel
    layer3 = [t for t in lines if t.xaxis == "x2"][0]
    assert list(layer3.x) == [1, 2, 3]
    assert list(layer3.y) == pytest.approx([0.1 * p + 0.02 + 0.05 + 0.003 for p in (1, 2, 3)])
    controls = by_name(fig, "depth 2 control")
    assert all(t.line.dash == "dash" and list(t.y) == [0.1] * 3 for t in controls)
    assert all(t.fill == "toself" for t in by_name(fig, "depth 2 95%"))
    with pytest.raises(ValueError, match="several facts"):
        figures.probe_curves(pl.concat([probes_table(), probes_table().with_columns(fact=pl.lit("other"))]))


def test_state_heatmap_shows_each_head():
    state = torch.randn(3, 4, 5)
    fig = figures.state_heatmap(state, "S")
    assert len(fig.data) == 3
    for h, trace in enumerate(fig.data):
        assert np.array_equal(np.asarray(trace.z), state[h].numpy())
        assert trace.zmin == -trace.zmax == -float(state.abs().max())
    with pytest.raises(ValueError, match="3 dimensions"):
        figures.state_heatmap(state[None])


def test_state_change_averages_examples_and_heads_per_layer():
    rows = [
        dict(example=e, window=w, **{"pass": p}, layer=layer, head=h, norm=p + e + h, delta=1.0, rel_delta=0.5 * h)
        for e in (0, 1)
        for w in (0, 1)
        for p in (1, 2)
        for layer in (1, 3)
        for h in (0, 1)
    ]
    fig = figures.state_change(pl.DataFrame(rows))
    norm = [t for t in by_name(fig, "layer 1") if t.xaxis == "x"][0]
    assert list(norm.x) == ["w0·p1", "w0·p2", "w1·p1", "w1·p2"]
    assert list(norm.y) == [2.0, 3.0, 2.0, 3.0]
    change = [t for t in by_name(fig, "layer 3") if t.xaxis == "x2"][0]
    assert list(change.y) == [0.25] * 4


def test_attention_map_keeps_repeated_tokens_apart():
    probs = torch.softmax(torch.randn(2, 4, 4), -1)
    tokens = ["a", "b", "a", "c"]
    fig = figures.attention_map(probs, tokens)
    assert np.allclose([np.asarray(t.z) for t in fig.data], probs.numpy())
    assert list(fig.layout.xaxis.ticktext) == tokens and list(fig.layout.xaxis.tickvals) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="do not agree"):
        figures.attention_map(probs, tokens[:3])


# --- attributions and anytime ---------------------------------------------------------------------------------


def test_attribution_strip_shows_the_evicted_tokens_and_the_path():
    attr = pl.DataFrame(
        dict(
            example=[0] * 6 + [0] * 6,
            position=[26] * 12,
            n=[1] * 6 + [2] * 6,
            source_position=list(range(5, -1, -1)) * 2,  # unsorted on purpose
            source_window=[0] * 12,
            token=[f"t{i}" for i in range(5, -1, -1)] * 2,
            attribution=[0.5, -0.2, 0.0, 0.1, 0.3, 0.0] + [9.0] * 6,
            delta=[0.0] * 12,
            on_path=[True, False, False, True, False, False] * 2,
        )
    )
    tokens = pl.DataFrame(dict(example=[0], position=[26], target_token=["n4"], depth=[2]))
    fig = figures.attribution_strip(attr, tokens, 0, 26, 1)
    heat = fig.data[0]
    assert list(heat.x) == [0, 1, 2, 3, 4, 5]
    assert list(heat.z[0]) == [0.0, 0.3, 0.1, 0.0, -0.2, 0.5]
    assert list(fig.layout.xaxis.ticktext) == [f"t{i}" for i in range(6)]
    assert list(by_name(fig, "true path")[0].x) == [2, 5]
    assert "'n4'" in fig.layout.title.text and "depth 2" in fig.layout.title.text
    with pytest.raises(ValueError, match="no attributions"):
        figures.attribution_strip(attr, tokens, 0, 26, 3)


def test_anytime_readout_plots_p_target_and_correctness_over_n():
    df = pl.DataFrame(
        dict(
            example=[0, 0, 0, 1],
            position=[26, 26, 26, 26],
            depth=[2] * 4,
            n=[3, 1, 2, 1],
            target=[7] * 4,
            target_token=["n4"] * 4,
            predicted=[7, 5, 7, 7],
            predicted_token=["n4", "n2", "n4", "n4"],
            p_target=[0.8, 0.2, 0.6, 0.9],
            p_predicted=[0.8, 0.5, 0.6, 0.9],
            correct=[True, False, True, True],
        )
    )
    fig = figures.anytime_readout(df, 0, 26)
    target = [t for t in fig.data if t.name.startswith("p(target")][0]
    assert list(target.x) == [1, 2, 3] and list(target.y) == [0.2, 0.6, 0.8]
    assert list(target.marker.symbol) == ["x", "circle", "circle"]
    assert list(by_name(fig, "p(predicted)")[0].y) == [0.5, 0.6, 0.8]


def test_figure_functions_print_nothing(capsys):
    figures.state_heatmap(np.zeros((2, 3, 3)))
    figures.accuracy_vs_passes(figures.results_table(RESULTS))
    assert capsys.readouterr() == ("", "")


# --- export ---------------------------------------------------------------------------------------------------


def needs_chromium():
    if find_browser() is None:
        reason = "Chromium is missing (apt-get install chromium): figure export cannot be tested"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}")
        print(f"skipping: {reason}")
        pytest.skip(reason)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def small_figure():
    fig = figures.state_heatmap(torch.randn(2, 4, 4), "export test")
    return fig.update_layout(width=400, height=300)


def test_export_writes_svg_pdf_and_png(tmp_path, small_figure):
    needs_chromium()
    ET.parse(export_figure(small_figure, tmp_path / "f.svg"))  # well-formed XML
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<svg")
    assert export_figure(small_figure, tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    assert png_size(export_figure(small_figure, tmp_path / "f.png").read_bytes()) == (400, 300)
    assert png_size(export_figure(small_figure, tmp_path / "big", "png", scale=2).read_bytes()) == (800, 600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "f.pdf", "f.png", "f.svg"]  # no temporary files


def test_export_uses_the_talk_size_by_default(tmp_path):
    needs_chromium()
    fig = figures.state_heatmap(np.ones((1, 2, 2)))
    assert png_size(export_figure(fig, tmp_path / "talk.png").read_bytes()) == (1280, 720)


def test_export_without_chromium_says_how_to_install_it(tmp_path, monkeypatch, small_figure):
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    monkeypatch.setattr(export.shutil, "which", lambda name: None)
    with pytest.raises(ExportError, match="apt-get install chromium"):
        export_figure(small_figure, tmp_path / "f.svg")
    assert not list(tmp_path.iterdir())


def test_export_rejects_unknown_formats(tmp_path, small_figure):
    with pytest.raises(ValueError, match="valid formats"):
        export_figure(small_figure, tmp_path / "f.jpg")
    with pytest.raises(ValueError, match="valid suffixes"):
        export_table(pl.DataFrame({"a": [1]}), tmp_path / "t.xlsx")


def test_export_table_round_trips(tmp_path):
    df = pl.DataFrame({"n": [1, 2], "acc": [0.5, 0.75], "token": ["a", "b"]})
    assert pl.read_parquet(export_table(df, tmp_path / "t.parquet")).equals(df)
    assert pl.read_csv(export_table(df, tmp_path / "t.csv")).equals(df)
