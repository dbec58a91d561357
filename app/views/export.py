"""Export: the figures of the current view in the talk template (SVG, PDF, PNG), and their tables."""

import io

import polars as pl
import streamlit as st

from analysis import export, session
from analysis.animation import sleep_animation
from analysis.figures import (
    METRICS,
    accuracy_vs_passes,
    accuracy_vs_test_passes,
    anytime_readout,
    headline_metric,
    results_table,
    state_change,
    state_heatmap,
)
from app import data, widgets
from sleepcore.results import results_command
from sleepcore.trace import sleep_passes

st.title("Export")
name, shape, view = data.page_view()
depth, seed, custom = widgets.pick_example(name, view)
trace = data.trace(name, depth, seed, custom)


def headline():
    rows, left_out = session.one_per_seed(data.preset_rows(name))
    for _, note in left_out:
        st.info(note)
    table = results_table(rows)
    counts = [m for m in METRICS if table.filter(pl.col("metric") == m).height]
    if not counts:  # e.g. runs stopped before their end-of-training evaluation, and none in RESULTS.json
        st.info(
            f"No evaluation is stored for {name} or another checkpoint of its preset (checkpoints/RESULTS.json, or "
            f"a finished run's config.json), so there is nothing to draw: `{results_command()}` writes one. "
            "Pick another figure above."
        )
        data.stop()
    labels = dict(table.select("metric", "metric_label").unique().iter_rows())
    judged = headline_metric(table)  # the count the task is judged on opens first
    metric = st.selectbox("Count", counts, index=counts.index(judged), format_func=labels.get, key="count")
    return accuracy_vs_passes(table, metric=metric), table.filter(pl.col("metric") == metric)


def test_time():
    sweep, _ = data.shipped_sweep(name)
    return accuracy_vs_test_passes(sweep, headline_metric(sweep)), sweep


def state():
    shown = min(view.pass_, sleep_passes(trace.meta))  # the wake loop writes each context window once
    S = trace.state(view.window, shown, view.layer)[0]
    return state_heatmap(S, title=f"{name}: S after window {view.window}, pass {shown}"), trace.tables["state"]


def change():
    return state_change(trace.tables["state"]), trace.tables["state"]


def wake():
    first = trace.anytime.filter(pl.col("example") == 0)["position"].min()
    return anytime_readout(trace.anytime, 0, first), trace.anytime


def animation():
    return sleep_animation(trace, view.layer, view.head), trace.tables["state"]


FIGURES = {
    "Accuracy vs sleep passes (all checkpoints of this preset)": headline,
    "Fast-weight state": state,
    "State across sleep": change,
    "Anytime readout": wake,
    "Sleep animation (first frame in files)": animation,
}
# Without fast-weight layers (attention-only baselines) there is no state to draw.
figures = FIGURES if shape.fw_layers else {k: f for k, f in FIGURES.items() if f not in (state, change, animation)}
shipped_sweep, sweep_problem = data.shipped_sweep(name)
if shipped_sweep is not None:  # sweep.parquet beside the checkpoint (`sleepcore sweep --out`)
    figures = {**figures, "Accuracy vs test-time passes (the shipped sweep)": test_time}
elif sweep_problem:  # a damaged file is said, not dropped without a word (the sweep page says it too)
    st.warning(f"The test-time figure is not offered: {sweep_problem}")
choice = st.selectbox("Figure", list(figures), key="figure")
fig, table = figures[choice]()
st.plotly_chart(fig, key="export_preview")

fmt = st.segmented_control("Figure format", ["svg", "pdf", "png"], default="svg", key="fmt")
stem = f"{name}-{choice.split(' (')[0].lower().replace(' ', '-')}"
if fmt is None:  # the pill was clicked off
    st.info("Pick a figure format (svg, pdf or png) to render the figure.")
elif export.find_browser() is None:
    st.warning("Figure export needs Chromium (kaleido drives it): `apt-get install chromium`.")
elif st.button("Render figure", key="render"):
    with st.spinner(f"Rendering {fmt.upper()} through kaleido…"):
        try:
            payload = export.figure_bytes(fig, fmt)
        except Exception as e:  # kaleido/Chromium failures must not take the page down
            st.error(f"Export failed: {e}")
            payload = None
    if payload:
        mime = {"svg": "image/svg+xml", "pdf": "application/pdf", "png": "image/png"}[fmt]
        st.download_button(f"Download {stem}.{fmt}", payload, f"{stem}.{fmt}", mime, key="dl_fig")

st.subheader("Its table")
st.dataframe(table.head(200), hide_index=True, width="stretch")
parquet = io.BytesIO()
table.write_parquet(parquet)
c1, c2 = st.columns(2)
c1.download_button(
    "Download Parquet", parquet.getvalue(), f"{stem}.parquet", "application/octet-stream", key="dl_parquet"
)
c2.download_button("Download CSV", table.write_csv().encode(), f"{stem}.csv", "text/csv", key="dl_csv")
