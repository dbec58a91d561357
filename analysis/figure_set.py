"""The whole figure set from checkpoints, for talks: `sleepcore figures --out DIR --format svg,pdf,png`.

Per task: accuracy vs N by depth (per answer, and exact where the task has it). Per checkpoint: its probe curves
(when probes.parquet ships beside it), accuracy against test-time passes (when sweep.parquet does) and, on one
held-out example at the task's middle depth, the fast-weight state after the last pass, the state across sleep, an
attention map, the anytime readout and an attribution strip.

`all_figures` is the whole set, all or nothing: it checks every input (each checkpoint's config.json, its weights,
the probes.parquet and sweep.parquet beside it) before drawing anything, and draws every figure before returning,
so a caller that writes only what it returns writes nothing when any input is damaged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

import plotly.graph_objects as go
import polars as pl

from analysis import session
from analysis.figures import (
    METRICS,
    accuracy_vs_passes,
    accuracy_vs_test_passes,
    anytime_readout,
    attention_map,
    attribution_strip,
    headline_metric,
    probe_curves,
    results_table,
    state_change,
    state_heatmap,
)
from sleepcore.trace import sleep_passes


def headline_figures(names: list[str]) -> Iterator[tuple[str, go.Figure]]:
    rows, notes = session.result_rows(names)  # a damaged RESULTS.json, a checkpoint skipped: said, not dropped
    rows, left_out = session.one_per_seed(rows)  # accuracy_vs_passes draws one model per preset, N and seed
    for note in [*notes, *(note for _, note in left_out)]:
        print(f"note: {note}", file=sys.stderr)
    if not rows:
        return
    table = results_table(rows)
    for preset in table["preset"].unique(maintain_order=True).to_list():  # one preset: one task, one set of depths
        sub = table.filter(pl.col("preset") == preset)
        for metric, stem in zip(METRICS, ("accuracy", "exact", "effective", "first")):
            counted = sub.filter(pl.col("metric") == metric)
            if counted.height:
                title = f"{preset}: accuracy vs N, {counted['metric_label'][0]}"
                yield f"{preset}-{stem}-vs-passes", accuracy_vs_passes(sub, metric=metric, title=title)


@dataclass
class Inputs:
    """What the figures of one checkpoint are drawn from, read and checked (`read_inputs`)."""

    loaded: session.Loaded
    probes: pl.DataFrame | None
    sweep: pl.DataFrame | None


def read_inputs(name: str) -> Inputs:
    """Read everything the figures of checkpoint `name` need, weights before the tables computed from them (so
    damaged weights are blamed, not a sweep that no longer matches them). ValueError (CheckpointError is one)
    naming the file and what is wrong."""
    session.checkpoint_info(name)  # an unknown name, or a config.json that is not a checkpoint's
    loaded = session.load(name)  # the config's sections and the weights, checked against each other
    return Inputs(loaded, session.shipped_probes(name), session.shipped_sweep(name))


def all_figures(names: list[str], seed: int = 0) -> list[tuple[str, go.Figure]]:
    """The whole figure set of these checkpoints as (stem, figure): the headline figures, then each checkpoint's.

    Every checkpoint's inputs are read and checked first (`read_inputs`), then every figure is drawn; the first
    problem raises before anything is returned, so nothing need be written until the whole set exists."""
    inputs = {name: read_inputs(name) for name in names}
    figures = list(headline_figures(names))
    for name in names:
        figures += checkpoint_figures(name, seed, inputs=inputs[name])
    return figures


def checkpoint_figures(name: str, seed: int = 0, *, inputs: Inputs | None = None) -> Iterator[tuple[str, go.Figure]]:
    """The figures of one checkpoint; `inputs` as `read_inputs(name)` gives them (read here when not given)."""
    inputs = read_inputs(name) if inputs is None else inputs
    probes = inputs.probes
    if probes is not None:
        for fact in probes["fact"].unique().sort().to_list():
            yield (
                f"{name}-probes-{fact}",
                probe_curves(session.sleep_curve(probes), fact=fact, title=f"{name}: probe accuracy ({fact})"),
            )
    sweep = inputs.sweep
    if sweep is not None:
        yield f"{name}-test-time-passes", accuracy_vs_test_passes(sweep, headline_metric(sweep))
    loaded = inputs.loaded
    task = loaded.task
    example = session.seeded_example(task, task.depths[len(task.depths) // 2], seed)
    trace = session.trace_example(loaded, example)
    layers, N = trace.meta["layers"], sleep_passes(trace.meta)
    context = [w for w in trace.meta["windows"] if w["kind"] == "context"]
    fw = [i for i, m in enumerate(layers) if m == "fw"]
    attn = [i for i, m in enumerate(layers) if m == "attn"]
    if context and fw:
        w = context[-1]
        yield (
            f"{name}-state",
            state_heatmap(
                trace.state(w["index"], N, fw[-1])[0],
                title=f"{name}: S (layer {fw[-1]}) after pass {N} of window {w['index']}",
            ),
        )
        yield f"{name}-state-across-sleep", state_change(trace.tables["state"], title=f"{name}: S across sleep")
    if context and attn:
        w = context[-1]
        words = task.vocab.decode(example.tokens[w["start"] : w["end"]])
        yield (
            f"{name}-attention",
            attention_map(
                trace.attn(w["index"], N, attn[0])[0], words, title=f"{name}: attention, layer {attn[0]}, pass {N}"
            ),
        )
    position = trace.anytime["position"].min()
    yield f"{name}-anytime", anytime_readout(trace.anytime, 0, position)
    if context:
        attr = session.attributions(loaded, example, N, [position])
        yield f"{name}-attribution", attribution_strip(attr, trace.tables["tokens"], 0, position, N)
