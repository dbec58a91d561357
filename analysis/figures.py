"""Figures for talks: pure functions from polars tables (or tensors) to plotly figures, all in one template.

`TALK` (registered as the plotly template "sleepcore-talk") is readable at the back of a room: fonts of 20 px and
more, the Okabe–Ito colour-blind-safe palette, a white background and a fixed 1280×720 size. No function here
writes a file or prints; export lives in analysis/export.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl
import torch
from plotly.subplots import make_subplots

from sleepcore.results import METRIC_NAMES, cell_text
from sleepcore.results import headline_metric as results_headline
from sleepcore.tasks import changed_values

# Okabe & Ito (2008), yellow last: it is the hardest to read on white.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon"]  # shape backs up colour
DIVERGING = "RdBu_r"  # blue–red stays distinguishable under the common colour-vision deficiencies
SEQUENTIAL = "Cividis"  # designed to read the same with and without colour vision deficiency
WIDTH, HEIGHT = 1280, 720
FONT = 22

_AXIS = dict(
    showline=True,
    linecolor="#222222",
    linewidth=2,
    ticks="outside",
    tickwidth=2,
    gridcolor="#E5E5E5",
    zeroline=False,
    title_font_size=24,
    tickfont_size=20,
    automargin=True,
)

TALK = go.layout.Template(
    layout=dict(
        font=dict(family="Helvetica, Arial, sans-serif", size=FONT, color="#222222"),
        title=dict(font=dict(size=28), x=0.02, xanchor="left"),
        colorway=OKABE_ITO,
        paper_bgcolor="white",
        plot_bgcolor="white",
        width=WIDTH,
        height=HEIGHT,
        margin=dict(l=100, r=40, t=90, b=90),
        xaxis=_AXIS,
        yaxis=_AXIS,
        legend=dict(font=dict(size=20), bgcolor="rgba(255,255,255,0.8)"),
        hoverlabel=dict(font_size=20),
        colorscale=dict(sequential=SEQUENTIAL, diverging=DIVERGING),
        annotationdefaults=dict(font=dict(size=20)),
    ),
    data=dict(
        scatter=[go.Scatter(line=dict(width=4), marker=dict(size=14))],
        heatmap=[go.Heatmap(colorbar=dict(tickfont=dict(size=20), thickness=24))],
    ),
)
pio.templates["sleepcore-talk"] = TALK


def _figure(title: str, rows: int = 1, cols: int = 1, subplot_titles: Sequence[str] | None = None) -> go.Figure:
    """An empty figure (with a grid of subplots when asked) in the talk template."""
    if rows == 1 and cols == 1:
        fig = go.Figure()
    else:
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=subplot_titles, horizontal_spacing=0.08)
        fig.update_annotations(font_size=22)  # subplot titles are annotations, which the template does not style
    fig.update_layout(template=TALK, title_text=title)
    return fig


def _colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def _band_colour(hex_colour: str, alpha: float = 0.2) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _numpy(x: torch.Tensor | np.ndarray, dims: int, what: str) -> np.ndarray:
    a = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    if a.ndim != dims:
        raise ValueError(f"{what} must have {dims} dimensions; got shape {tuple(a.shape)}")
    return a


def _require(df: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs the columns {missing}; got {df.columns}")


# --- results: the paper's headline ---------------------------------------------------------------------------


METRICS = METRIC_NAMES
METRIC_LABELS = {
    "answers": "per answer",
    "exact": "exact (whole sequence right)",
    "effective": "by the depth an answer really needs",
    "first": "the first answer of each sequence alone",
}


def results_table(eval_results: list[dict]) -> pl.DataFrame:
    """Flatten `sleepcore.results.evaluate_checkpoint` dicts: one row per (checkpoint, passes, metric, depth).

    Columns: checkpoint, variant, task, preset (the task's name where a row has none), passes, trained_passes,
    metric ("answers" | "exact" | "effective" | "first", see METRICS), metric_label (what the count is: the task's
    name for its effective depth, e.g. gsm's "operations, the question alone"), depth, acc, lo, hi, n, chance (per
    answer; null for exact), train_seed (the initialisation seed: models trained again with other seeds are
    replicas), and where the input says (`sleepcore.results` evaluations do) weights_sha256, per_depth (sequences
    per depth) and eval_seed (the held-out examples' seed), else null; task_changed: the task settings an
    evaluation changed (`setting=value, ...`; null on the task the model was trained on). Compare models within one
    preset: presets of one task can ask different depths of different problems.
    """
    rows = []
    for r in eval_results:
        for metric in METRICS:
            label = r.get("effective_name") if metric == "effective" else None
            for depth, cell in (r.get(metric) or {}).items():
                rows.append(
                    {
                        "checkpoint": r["checkpoint"],
                        "variant": r.get("variant", "hybrid"),
                        "task": r.get("task"),
                        "preset": r.get("preset") or r.get("task"),
                        "passes": r["passes"],
                        "trained_passes": r.get("trained_passes", r["passes"]),
                        "metric": metric,
                        "metric_label": label or METRIC_LABELS[metric],
                        "depth": int(depth),
                        "acc": cell["acc"],
                        "lo": cell["lo"],
                        "hi": cell["hi"],
                        "n": cell["n"],
                        "chance": r.get("chance", {}).get(str(depth)) if metric != "exact" else None,
                        "train_seed": r.get("train_seed", 0),
                        "weights_sha256": r.get("weights_sha256"),
                        "per_depth": r.get("per_depth"),
                        "eval_seed": r.get("seed"),
                        "task_changed": changed_values(r.get("task_changed")),
                    }
                )
    schema = {
        "checkpoint": pl.String,
        "variant": pl.String,
        "task": pl.String,
        "preset": pl.String,
        "passes": pl.Int32,
        "trained_passes": pl.Int32,
        "metric": pl.String,
        "metric_label": pl.String,
        "depth": pl.Int32,
        "acc": pl.Float64,
        "lo": pl.Float64,
        "hi": pl.Float64,
        "n": pl.Int32,
        "chance": pl.Float64,
        "train_seed": pl.Int64,
        "weights_sha256": pl.String,
        "per_depth": pl.Int32,
        "eval_seed": pl.Int64,
        "task_changed": pl.String,
    }
    return pl.DataFrame(rows, schema=schema).sort("variant", "checkpoint", "passes", "metric", "depth")


def _task_changes(results: pl.DataFrame) -> list[str]:
    """The task changes a results table was evaluated with (`results_table`'s task_changed), or [] for none."""
    return results["task_changed"].drop_nulls().unique().to_list() if "task_changed" in results.columns else []


_BASELINE_SYMBOLS = {
    "attn-only": "x",
    "full-attention": "star",
    "wide": "diamond-open",
    "wake-loop": "triangle-up-open",
}


def accuracy_vs_passes(
    results: pl.DataFrame, metric: str = "answers", trained_only: bool = True, title: str | None = None
) -> go.Figure:
    """Accuracy against sleep passes N, one line per depth, with 95% intervals as error bars.

    results: `results_table` rows (columns checkpoint, variant, passes, depth, acc, lo, hi; metric, trained_passes
    and chance are used when present). trained_only keeps models evaluated at the N they were trained with (the
    paper compares separately trained models). Hybrid rows make the lines; other variants (the baselines) are
    separate markers at their own N, in their depth's colour, one symbol per variant; chance is a dotted line.
    Where models were trained with other seeds (train_seed), the solid line follows the lowest seed of these
    results, and every other seed is a dotted line of open circles just left of it (an N trained only with another
    seed is on that seed's line alone, never on the first seed's).
    """
    _require(results, ["checkpoint", "variant", "passes", "depth", "acc", "lo", "hi"], "accuracy_vs_passes")
    if "metric" in results.columns:
        results = results.filter(pl.col("metric") == metric)
    if trained_only and "trained_passes" in results.columns:
        results = results.filter(pl.col("passes") == pl.col("trained_passes"))
    if "train_seed" not in results.columns:
        results = results.with_columns(train_seed=pl.lit(0, dtype=pl.Int64))
    hybrid = results.filter(pl.col("variant") == "hybrid").sort("depth", "passes", "train_seed")
    twice = hybrid.group_by("depth", "passes", "train_seed").len().filter(pl.col("len") > 1)
    if twice.height:
        raise ValueError(
            f"several hybrid results for the same (depth, N, train_seed): {twice.rows()}; pick one checkpoint per N "
            "and seed"
        )
    first_seed = pl.col("train_seed") == pl.col("train_seed").min()
    hybrid, replicas = hybrid.filter(first_seed), hybrid.filter(~first_seed)
    label = results["metric_label"][0] if "metric_label" in results.columns and results.height else None
    fig = _figure(title or f"Accuracy vs sleep passes ({label or METRIC_LABELS.get(metric, metric)})")
    depths = sorted(results["depth"].unique().to_list())
    for i, depth in enumerate(depths):
        d = hybrid.filter(pl.col("depth") == depth)
        if d.height:
            fig.add_trace(
                _with_errors(d, f"depth {depth}", _colour(i), SYMBOLS[i % len(SYMBOLS)], mode="lines+markers")
            )
        else:  # no line to name this depth's colour (e.g. only baselines): a legend entry names it instead
            fig.add_trace(_depth_key(depth, _colour(i)))
    if replicas.height:
        legend = dict(size=12, color="#666666", symbol="circle-open")
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="other seeds", marker=legend))
        for i, depth in enumerate(depths):
            for seed in replicas["train_seed"].unique().sort().to_list():
                d = replicas.filter((pl.col("depth") == depth) & (pl.col("train_seed") == seed))
                if not d.height:
                    continue
                name = f"seed {seed}, depth {depth}"
                trace = _with_errors(d, name, _colour(i), "circle-open", mode="lines+markers")
                trace.update(
                    x=[x - 0.08 for x in trace.x],
                    legendgroup="other seeds",
                    showlegend=False,
                    marker=dict(size=12, line=dict(width=2)),
                    line=dict(dash="dot", width=2),
                    meta={"variant": "hybrid", "depth": depth, "replica": True, "train_seed": seed},
                )
                fig.add_trace(trace)
    baselines = results.filter(pl.col("variant") != "hybrid").sort("variant", "depth")
    for j, variant in enumerate(baselines["variant"].unique(maintain_order=True).to_list()):
        symbol = _BASELINE_SYMBOLS.get(variant, "cross")
        legend = dict(size=16, color="#666666", symbol=symbol)  # grey in the legend: the colour is the depth's
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=variant, marker=legend, legendgroup=variant))
        for i, depth in enumerate(depths):
            d = baselines.filter((pl.col("variant") == variant) & (pl.col("depth") == depth))
            if d.height:
                trace = _with_errors(d, f"{variant}, depth {depth}", _colour(i), symbol, mode="markers")
                trace.update(
                    x=[x + 0.08 * (j + 1) for x in trace.x],  # beside the hybrid's marker at the same N
                    legendgroup=variant,
                    showlegend=False,
                    marker=dict(size=16, line=dict(width=2)),
                    meta={"variant": variant, "depth": depth},
                )
                fig.add_trace(trace)
    _chance_line(fig, results)
    passes = sorted(results["passes"].unique().to_list())
    fig.update_xaxes(title_text="sleep passes N", tickvals=passes)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    return fig


def _depth_key(depth, colour: str) -> go.Scatter:
    """A legend entry without data: a filled square in a depth's colour, named "depth d"."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="markers",
        name=f"depth {depth}",
        marker=dict(size=16, color=colour, symbol="square"),
        hoverinfo="skip",
        meta={"depth": depth, "legend_only": True},
    )


def headline_metric(results: pl.DataFrame) -> str:
    """The count a task is judged on (`sleepcore.results.headline_metric`) among a results table's metrics (its
    task's choice where the table names one task)."""
    tasks = results["task"].drop_nulls().unique().to_list() if "task" in results.columns else []
    return results_headline(results["metric"].unique().to_list(), tasks[0] if len(tasks) == 1 else None)


def accuracy_vs_test_passes(results: pl.DataFrame, metric: str = "answers", title: str | None = None) -> go.Figure:
    """One checkpoint evaluated with P sleep passes at test time (`sleepcore sweep`): accuracy against P, one line
    per depth with 95% intervals, the N it was trained with as a dotted vertical line, chance as a dotted one."""
    _require(results, ["checkpoint", "passes", "trained_passes", "metric", "depth", "acc", "lo", "hi"], "a sweep")
    results = results.filter(pl.col("metric") == metric).sort("depth", "passes")
    names = results["checkpoint"].unique().to_list()
    if len(names) != 1:
        raise ValueError(f"a sweep figure shows one checkpoint; got {names or 'none'} with metric {metric!r}")
    label = results["metric_label"][0] if "metric_label" in results.columns else METRIC_LABELS.get(metric, metric)
    changed = _task_changes(results)
    on = f", on a changed task: {'; '.join(changed)}" if changed else ""
    fig = _figure(title or f"{names[0]}: accuracy vs test-time passes ({label}){on}")
    for i, depth in enumerate(results["depth"].unique().sort().to_list()):
        d = results.filter(pl.col("depth") == depth)
        fig.add_trace(_with_errors(d, f"depth {depth}", _colour(i), SYMBOLS[i % len(SYMBOLS)], mode="lines+markers"))
    trained = results["trained_passes"][0]
    fig.add_vline(
        x=trained,
        line=dict(dash="dot", width=2, color="#666666"),
        annotation_text=f"trained N = {trained}",
        annotation_position="bottom right",
    )
    _chance_line(fig, results)
    fig.update_xaxes(title_text="sleep passes at test time", tickvals=sorted(results["passes"].unique().to_list()))
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    return fig


def sweep_table(results: pl.DataFrame, metric: str) -> pl.DataFrame:
    """One count of a sweep (`results_table` rows of one checkpoint at several test-time N): one row per N
    (`passes`), one column per depth ("depth d"), each cell accuracy and its 95% interval as text (`cell_text`)."""
    counted = results.filter(pl.col("metric") == metric)
    text = [cell_text(c) for c in counted.select("acc", "lo", "hi").iter_rows(named=True)]
    return (
        counted.with_columns(cell=pl.Series(text, dtype=pl.String))
        .pivot(on="depth", index="passes", values="cell", sort_columns=True)
        .sort("passes")
        .rename(lambda c: c if c == "passes" else f"depth {c}")
    )


def format_sweep(results: pl.DataFrame) -> str:
    """A sweep as text: a title naming the checkpoint (and a changed task, as `sleepcore eval`'s title does), then
    per count, one row per test-time N, one column per depth, each cell the accuracy and its 95% interval with 3
    decimals, as `sleepcore eval` prints them; the trained N starred (and the star explained) where it is among
    the rows."""
    blocks, starred = [], False
    for metric in METRICS:
        counted = results.filter(pl.col("metric") == metric)
        if not counted.height:
            continue
        trained = counted["trained_passes"][0]
        table = sweep_table(counted, metric)
        depths = [c for c in table.columns if c != "passes"]
        lines = [counted["metric_label"][0], "  N  " + "".join(f"{d:>22}" for d in depths)]
        for row in table.iter_rows(named=True):
            n = row["passes"]
            starred |= n == trained
            lines.append(f"{n:>3}{'*' if n == trained else ' '} " + "".join(f"{row[d] or '—':>22}" for d in depths))
        blocks.append("\n".join(lines))
    changed = _task_changes(results)
    on = f", on a changed task: {'; '.join(changed)}" if changed else ""
    title = f"{results['checkpoint'][0]} at each test-time N (trained N = {results['trained_passes'][0]}){on}"
    return "\n\n".join([title, *blocks]) + ("\n(* the N it was trained with)" if starred else "")


def _chance_line(fig: go.Figure, results: pl.DataFrame) -> None:
    """Chance as a dotted line, where the rows share one chance level."""
    chance = results["chance"].drop_nulls().unique().to_list() if "chance" in results.columns else []
    if len(chance) == 1:
        fig.add_hline(y=chance[0], line=dict(dash="dot", width=2, color="#666666"), annotation_text="chance")


def _with_errors(d: pl.DataFrame, name: str, colour: str, symbol: str, mode: str) -> go.Scatter:
    acc = d["acc"].to_numpy()
    return go.Scatter(
        x=d["passes"].to_list(),
        y=acc.tolist(),
        name=name,
        mode=mode,
        line=dict(color=colour),
        marker=dict(color=colour, symbol=symbol),
        error_y=dict(
            type="data",
            symmetric=False,
            array=(d["hi"].to_numpy() - acc).tolist(),
            arrayminus=(acc - d["lo"].to_numpy()).tolist(),
            thickness=2,
            width=6,
        ),
    )


# --- probes ---------------------------------------------------------------------------------------------------


def probe_curves(
    probes: pl.DataFrame, fact: str | None = None, baseline: str = "trained", title: str | None = None
) -> go.Figure:
    """Probe accuracy over sleep pass, one line per fact depth with its 95% band; the control task dashed.

    probes: the probes table (docs/TRACE_SCHEMA.md). One subplot per layer; seeds are averaged. `fact` picks one
    fact when the table holds several; `baseline` picks the model ("trained", "pass1" or "random_init").
    """
    cols = ["fact", "fact_depth", "layer", "pass", "acc", "acc_lo", "acc_hi", "control_acc"]
    _require(probes, cols, "probe_curves")
    if "baseline" in probes.columns:
        probes = probes.filter(pl.col("baseline") == baseline)
    facts = probes["fact"].unique().sort().to_list()
    if fact is None and len(facts) > 1:
        raise ValueError(f"the probes table holds several facts {facts}; pass fact=")
    fact = fact or (facts[0] if facts else "")
    probes = probes.filter(pl.col("fact") == fact)
    means = probes.group_by("layer", "fact_depth", "pass").agg(pl.col("acc", "acc_lo", "acc_hi", "control_acc").mean())
    means = means.sort("layer", "fact_depth", "pass")
    layers = means["layer"].unique().sort().to_list()
    depths = means["fact_depth"].unique().sort().to_list()
    fig = _figure(
        title or f"Probe accuracy: {fact} ({baseline})",
        cols=max(len(layers), 1),
        subplot_titles=[f"layer {layer}" for layer in layers],
    )
    for c, layer in enumerate(layers, start=1):
        for i, depth in enumerate(depths):
            d = means.filter((pl.col("layer") == layer) & (pl.col("fact_depth") == depth))
            for trace in _probe_traces(d, f"depth {depth}", _colour(i), SYMBOLS[i % len(SYMBOLS)], first=c == 1):
                fig.add_trace(trace, **({} if len(layers) == 1 else {"row": 1, "col": c}))
    if "chance" in probes.columns and probes.height:
        fig.add_hline(y=float(probes["chance"].mean()), line=dict(dash="dot", width=2, color="#666666"))
    fig.update_xaxes(title_text="sleep pass n", dtick=1)
    fig.update_yaxes(title_text="probe accuracy", range=[0, 1.02])
    return fig


def _probe_traces(d: pl.DataFrame, name: str, colour: str, symbol: str, first: bool) -> list[go.Scatter]:
    """Band (lo…hi), accuracy line, control line (dashed) for one (layer, fact depth)."""
    x = d["pass"].to_list()
    band = go.Scatter(
        x=x + x[::-1],
        y=d["acc_hi"].to_list() + d["acc_lo"].to_list()[::-1],
        mode="lines",
        fill="toself",
        fillcolor=_band_colour(colour),
        line=dict(width=0),
        hoverinfo="skip",
        showlegend=False,
        legendgroup=name,
        name=f"{name} 95%",
    )
    acc = go.Scatter(
        x=x,
        y=d["acc"].to_list(),
        name=name,
        mode="lines+markers",
        line=dict(color=colour),
        marker=dict(color=colour, symbol=symbol),
        legendgroup=name,
        showlegend=first,
    )
    control = go.Scatter(
        x=x,
        y=d["control_acc"].to_list(),
        name=f"{name} control",
        mode="lines",
        line=dict(color=colour, dash="dash", width=3),
        legendgroup=name,
        showlegend=False,
    )
    return [band, acc, control]


# --- fast-weight state ----------------------------------------------------------------------------------------


def state_heatmap(state: torch.Tensor | np.ndarray, title: str = "Fast-weight state") -> go.Figure:
    """One heatmap per head of a fast-weight state S [H, K, V] (rows: key dim K, columns: value dim V).

    A shared colour scale, symmetric about zero, so heads compare directly.
    """
    s = _numpy(state, 3, "state [H, K, V]")
    H = s.shape[0]
    bound = float(np.abs(s).max()) or 1.0
    fig = _figure(title, cols=H, subplot_titles=[f"head {h}" for h in range(H)])
    for h in range(H):
        heat = go.Heatmap(
            z=s[h],
            zmin=-bound,
            zmax=bound,
            colorscale=DIVERGING,
            showscale=h == H - 1,
            name=f"head {h}",
            hovertemplate="k=%{y} v=%{x}: %{z:.3g}<extra></extra>",
        )
        fig.add_trace(heat, **({} if H == 1 else {"row": 1, "col": h + 1}))
    fig.update_xaxes(title_text="value dim")
    fig.update_yaxes(autorange="reversed")
    fig.layout.yaxis.title.text = "key dim"  # the first panel only
    return fig


def state_change(state_table: pl.DataFrame, title: str = "Fast-weight state across sleep") -> go.Figure:
    """State norm (left) and relative change from the previous pass (right) at every (window, pass), per layer.

    state_table: state.parquet rows (example, window, pass, layer, head, norm, delta, rel_delta); averaged over
    examples and heads. x is the sleep step "w{window}·p{pass}" in order.
    """
    _require(state_table, ["window", "pass", "layer", "norm", "rel_delta"], "state_change")
    means = state_table.group_by("layer", "window", "pass").agg(pl.col("norm", "rel_delta").mean())
    means = means.sort("layer", "window", "pass")
    fig = _figure(title, cols=2, subplot_titles=["‖S‖ after the pass", "relative change ‖ΔS‖ / ‖S‖"])
    for i, layer in enumerate(means["layer"].unique().sort().to_list()):
        d = means.filter(pl.col("layer") == layer)
        steps = [f"w{w}·p{p}" for w, p in zip(d["window"], d["pass"])]
        style = dict(mode="lines+markers", line=dict(color=_colour(i)), marker=dict(symbol=SYMBOLS[i % len(SYMBOLS)]))
        fig.add_trace(go.Scatter(x=steps, y=d["norm"].to_list(), name=f"layer {layer}", **style), row=1, col=1)
        fig.add_trace(
            go.Scatter(x=steps, y=d["rel_delta"].to_list(), name=f"layer {layer}", showlegend=False, **style),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="window · pass", type="category")
    fig.update_yaxes(rangemode="tozero")
    return fig


# --- attention ------------------------------------------------------------------------------------------------


def attention_map(probs: torch.Tensor | np.ndarray, tokens: Sequence[str], title: str = "Attention") -> go.Figure:
    """One heatmap per head of attention probabilities [H, L, L] (query rows, key columns), tokens on the axes."""
    p = _numpy(probs, 3, "attention probabilities [H, L, L]")
    H, L, L2 = p.shape
    if L != L2 or len(tokens) != L:
        raise ValueError(f"probs [H, L, L] = {p.shape} and {len(tokens)} tokens do not agree")
    fig = _figure(title, cols=H, subplot_titles=[f"head {h}" for h in range(H)])
    idx = list(range(L))  # numeric axes with token tick labels: repeated tokens must not merge into one category
    for h in range(H):
        heat = go.Heatmap(
            z=p[h],
            x=idx,
            y=idx,
            zmin=0,
            zmax=1,
            colorscale=SEQUENTIAL,
            showscale=h == H - 1,
            name=f"head {h}",
            customdata=[[f"{tokens[q]} → {tokens[k]}" for k in idx] for q in idx],
            hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
        )
        fig.add_trace(heat, **({} if H == 1 else {"row": 1, "col": h + 1}))
    ticks = dict(tickvals=idx, ticktext=list(tokens), tickfont_size=20 if L <= 32 else 14)
    fig.update_xaxes(title_text="key", tickangle=-90, **ticks)
    fig.update_yaxes(autorange="reversed", **ticks)
    fig.layout.yaxis.title.text = "query"  # the first panel only
    return fig


# --- attributions and anytime readout ---------------------------------------------------------------------


def attribution_strip(attr_df: pl.DataFrame, tokens_df: pl.DataFrame, example: int, position: int, n: int) -> go.Figure:
    """A heat strip over the evicted tokens: each one's attribution to the answer at (example, position) after n
    passes; Depo's true-path tokens are marked with a dot above the strip. attr_df: the attributions table;
    tokens_df: tokens.parquet (for the answer's text in the title)."""
    d = attr_df.filter((pl.col("example") == example) & (pl.col("position") == position) & (pl.col("n") == n))
    if d.height == 0:
        raise ValueError(f"no attributions for example {example}, position {position}, n {n}")
    d = d.sort("source_position")
    x = d["source_position"].to_list()
    values = d["attribution"].to_numpy()
    bound = float(np.abs(values).max()) or 1.0
    fig = _figure(f"Evicted tokens behind {_answer_label(tokens_df, example, position)} (N = {n})")
    fig.add_trace(
        go.Heatmap(
            z=[values.tolist()],
            x=x,
            y=["attribution"],
            zmin=-bound,
            zmax=bound,
            colorscale=DIVERGING,
            customdata=[d["token"].to_list()],
            hovertemplate="%{customdata} (position %{x}): %{z:.3g}<extra></extra>",
            colorbar=dict(title=dict(text="IG", side="right")),
            name="attribution",
        )
    )
    if "on_path" in d.columns and d["on_path"].any():
        on = d.filter(pl.col("on_path"))
        fig.add_trace(
            go.Scatter(
                x=on["source_position"].to_list(),
                y=["on path"] * on.height,
                mode="markers",
                marker=dict(symbol="circle", size=14, color="#000000"),
                name="true path",
            )
        )
    for boundary in d.group_by("source_window").agg(pl.col("source_position").min())["source_position"].sort()[1:]:
        fig.add_vline(x=boundary - 0.5, line=dict(color="#222222", width=3))  # an evicted window ends here
    fig.update_xaxes(tickvals=x, ticktext=d["token"].to_list(), tickangle=-90, tickfont_size=20 if len(x) <= 40 else 12)
    fig.update_yaxes(showgrid=False)  # categories in trace order: the strip, then the path marks above it
    fig.update_layout(height=420)
    return fig


def _answer_label(tokens_df: pl.DataFrame, example: int, position: int) -> str:
    row = tokens_df.filter((pl.col("example") == example) & (pl.col("position") == position))
    if row.height == 0:
        return f"position {position}"
    r = row.row(0, named=True)
    depth = f", depth {r['depth']}" if r.get("depth", -1) >= 0 else ""
    return f"'{r.get('target_token') or '?'}' at position {position}{depth}"


def anytime_readout(anytime_df: pl.DataFrame, example: int, position: int) -> go.Figure:
    """The answer the model would give after waking at pass n: p(target) over n, each point marked right (filled
    circle) or wrong (cross, labelled with the predicted token); p(predicted) dashed."""
    d = anytime_df.filter((pl.col("example") == example) & (pl.col("position") == position)).sort("n")
    if d.height == 0:
        raise ValueError(f"no anytime readout for example {example}, position {position}")
    n = d["n"].to_list()
    correct = d["correct"].to_list()
    target = d["target_token"][0]
    fig = _figure(f"Waking after n passes: p('{target}') at position {position}")
    fig.add_trace(
        go.Scatter(
            x=n,
            y=d["p_predicted"].to_list(),
            name="p(predicted)",
            mode="lines",
            line=dict(color=OKABE_ITO[1], dash="dash", width=3),
            customdata=d["predicted_token"].to_list(),
            hovertemplate="n=%{x}: predicted %{customdata} (%{y:.2f})<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=n,
            y=d["p_target"].to_list(),
            name=f"p(target '{target}')",
            mode="lines+markers+text",
            line=dict(color=OKABE_ITO[0]),
            marker=dict(
                symbol=["circle" if c else "x" for c in correct],
                size=18,
                color=[OKABE_ITO[2] if c else OKABE_ITO[3] for c in correct],
                line=dict(width=2, color="#222222"),
            ),
            text=["" if c else p for c, p in zip(correct, d["predicted_token"].to_list())],
            textposition="top center",
            customdata=[["right" if c else "wrong"] for c in correct],
            hovertemplate="n=%{x}: p(target)=%{y:.2f} (%{customdata[0]})<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="sleep passes before waking n", tickvals=n)
    fig.update_yaxes(title_text="probability", range=[0, 1.05])
    return fig
