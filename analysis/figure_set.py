"""The whole figure set from checkpoints, for talks: `sleepcore figures --out DIR --format svg,pdf,png`.

Per task: accuracy vs N by depth (per answer, and exact where the task has it). Per checkpoint: its probe curves
(when probes.parquet ships beside it), accuracy against test-time passes (when sweep.parquet does) and, on one
held-out example at the task's middle depth, the fast-weight state after the last pass, the state across sleep, an
attention map, the anytime readout and an attribution strip.
"""

from __future__ import annotations

from collections.abc import Iterator

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
    rows, _ = session.result_rows(names)
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


def checkpoint_figures(name: str, seed: int = 0) -> Iterator[tuple[str, go.Figure]]:
    probes = session.shipped_probes(name)
    if probes is not None:
        for fact in probes["fact"].unique().sort().to_list():
            yield (
                f"{name}-probes-{fact}",
                probe_curves(session.sleep_curve(probes), fact=fact, title=f"{name}: probe accuracy ({fact})"),
            )
    sweep = session.shipped_sweep(name)
    if sweep is not None:
        yield f"{name}-test-time-passes", accuracy_vs_test_passes(sweep, headline_metric(sweep))
    loaded = session.load(name)
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
