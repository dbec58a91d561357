"""Sleep at test time: the same weights run with P sleep passes per window, accuracy against P by depth."""

import polars as pl
import streamlit as st

from analysis.figures import METRICS, accuracy_vs_test_passes, headline_metric, results_table, sweep_table
from app import data
from app.state import SWEEP_EXAMPLES, SweepView, parse_sweep, sweep_choices
from sleepcore.results import SWEEP_FILE, sweep_command
from sleepcore.train import EVAL_SEED

st.title("Sleep at test time")
name, shape, view = data.page_view(uses=())  # this page shows no example: the URL's view is the other pages'.
trained = shape.passes
sleep = data.info(name)["sleep"]
loop = sleep.get("loop", "sleep")
if sleep["window"] is None and loop == "sleep":  # the full-attention reference: one window, read out in one pass
    st.info(
        f"**{name}** never evicts: its attention sees the whole sequence as one window, which it answers from in "
        "one ordinary pass. No context window is ever slept on, so it has no sleep passes to change at test time: "
        "every P would give exactly the same answers (`sleepcore sweep` evaluates it at N = 1 only). It is "
        "the upper reference, not a competitor."
    )
    data.stop()
if loop == "wake":
    st.markdown(
        f"**{name}** is the wake-loop control: it was trained to run **N = {trained}** passes over each window it "
        "answers from (its context windows are written once, without sleep). Here the same weights run **P** such "
        "passes instead, on the same held-out examples for every P. `sleepcore sweep` does the same from the "
        "command line."
    )
elif not shape.fw_layers:  # attention-only: it evicts, but has no fast weights to carry anything across
    st.markdown(
        f"**{name}** has no fast-weight layers: like the sleep models it evicts each context window, and its "
        f"**N = {trained}** pass(es) on a context window run over its attention layers only. Nothing those passes "
        "compute crosses the eviction (only fast-weight state does, and it has none), so it answers from the window "
        "it reads alone, and every **P** gives exactly the same answers: the flat line is the floor that shows what "
        "sleep adds to the other models. `sleepcore sweep` does the same from the command line."
    )
else:
    st.markdown(
        f"**{name}** was trained to sleep **N = {trained}** passes on each context window before it is evicted. "
        "Here the same weights sleep **P** passes instead, on the same held-out examples for every P: too few passes "
        "leave the deep answers out; more than it was trained with shows whether the consolidation keeps going or "
        "drifts. `sleepcore sweep` does the same from the command line."
    )
shipped, problem = data.shipped_sweep(name)
if problem:
    st.warning(f"The sweep shipped with this checkpoint is not used: {problem}")
sweep = parse_sweep(data.url(), trained, shipped["per_depth"][0] if shipped is not None else 50)
data.tell(sweep.messages)
c1, c2 = st.columns(2)


def _sort_passes() -> None:
    """Keep the chosen passes in order, as the URL and the figure hold them (so Back shows them as they were)."""
    st.session_state["sweep_passes"] = sorted(st.session_state["sweep_passes"])


# Given through session state, not default=: _sort_passes writes it, and Streamlit warns of a widget given both.
if data.url_wins() or "sweep_passes" not in st.session_state:
    st.session_state["sweep_passes"] = sweep.passes
passes = c1.multiselect("Passes at test time", sweep_choices(trained), key="sweep_passes", on_change=_sort_passes)
examples = c2.select_slider(
    "Held-out examples per depth",
    SWEEP_EXAMPLES,
    key="sweep_examples",
    **data.initial("sweep_examples", sweep.examples),
)
if not passes:
    st.info("Pick at least one number of passes.")
    data.stop()
data.url().update(SweepView(sorted(passes), examples).params())  # the URL reopens this sweep
# P values the shipped sweep holds at this many examples (and the page's seed) are read from it, not evaluated
usable = shipped is not None and shipped["per_depth"][0] == examples and shipped["eval_seed"][0] == EVAL_SEED
from_file = sorted(set(passes) & set(shipped["passes"].to_list())) if usable else []
todo = [p for p in sorted(passes) if p not in from_file]
rows = []
if todo:
    bar = st.progress(0.0, text="Evaluating…")
    for i, p in enumerate(todo):
        bar.progress(i / len(todo), text=f"Evaluating at P = {p} ({i + 1} of {len(todo)})…")
        rows.append(data.sweep_point(name, p, examples))
    bar.empty()


shipped_rows = [shipped.filter(pl.col("passes").is_in(from_file))] if from_file else []
table = pl.concat([results_table(rows), *shipped_rows], how="diagonal_relaxed")  # a file may hold more columns
counts = [m for m in METRICS if table.filter(pl.col("metric") == m).height]
labels = dict(table.select("metric", "metric_label").unique().iter_rows())
metric = st.radio("Count", counts, index=counts.index(headline_metric(table)), format_func=labels.get, horizontal=True)
st.plotly_chart(accuracy_vs_test_passes(table, metric), key="sweep_figure")
st.dataframe(sweep_table(table, metric), hide_index=True, width="stretch")
st.caption(
    f"95% Wilson intervals; {examples} sequences per depth, seed {EVAL_SEED} (the test split). Each P is evaluated "
    "once and cached, so changing the selection only evaluates what is new."
    + (
        f" P = {', '.join(map(str, from_file))} come from the sweep shipped beside the checkpoint (sweep.parquet; "
        f"reproduce: `{data.shell(sweep_command(name, shipped, trained, data.served(name, SWEEP_FILE)))}`)."
        if from_file
        else ""
    )
)
