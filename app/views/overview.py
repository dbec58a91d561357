"""Overview: the shipped checkpoints, their results (accuracy vs N by depth), and their model cards."""

import polars as pl
import streamlit as st

from analysis import session
from analysis.figures import METRICS, accuracy_vs_passes, headline_metric, results_table
from app import data
from sleepcore.results import glance, results_command

st.title("Language models that sleep")
st.markdown(
    "Each model reads its input in windows under **hard KV eviction**: at every window boundary the attention "
    "cache is cleared and only the fast-weight state *S* crosses. Before a context window is evicted the model "
    "**sleeps**: *N* offline passes over the window rewrite *S*. The question is whether more sleep lets a model "
    "answer deeper questions about context it no longer holds."
)


def _short(heading: str) -> str:
    """A glance column's heading in a few characters: "wake loop N = 4" → "wake N=4"."""
    for long, short in (("wake loop", "wake"), ("attention only", "attn"), ("full attention", "full"), (" = ", "=")):
        heading = heading.replace(long, short)
    return heading


names = data.checkpoint_names()
for name, why in data.incomplete():  # folders checkpoint_names leaves out: a copy cut short, a file removed
    st.error(f"Checkpoint skipped: {name}: {why}")
if not names:
    ship = data.shell("sleepcore ship runs/r110-n4 --name rule110-mini-n4")
    st.warning(
        data.root_problem()
        or f"No checkpoints found in {data.checkpoints_place()}. Train one: `sleepcore train --preset rule110-mini "
        f"--passes 4 --out runs/r110-n4`, then `{ship}`."
    )
    data.stop()

rows, notes = data.result_rows(tuple(names))
for note in notes:
    st.error(note)

drawn, left_out = session.one_per_seed(rows)
table = results_table(drawn) if drawn else None
if rows:
    columns, glance_rows = glance(rows)
    st.subheader("At a glance: every preset at its deepest depth")
    st.dataframe(
        pl.DataFrame(
            glance_rows,
            schema={"preset": pl.String, "count, depth": pl.String, "seed": pl.Int64}
            | dict.fromkeys(columns, pl.Float64),
        ),
        hide_index=True,
        width="stretch",
        height=35 * (len(glance_rows) + 1) + 3,  # every row shown, no inner scrolling
        column_config={"preset": st.column_config.TextColumn(width=170)}  # the longest name whole
        | {  # short headings, so the table fits the page; the full name on hovering
            c: st.column_config.NumberColumn(label=_short(c), help=c, format="%.3f") for c in columns
        },
    )
    st.caption(
        "Accuracy by the count each task is judged on (the depth an answer really needs where a task has one; for "
        "Rule 110, every answer of a sequence right: whole rows), one row per training seed; None where no such "
        "model is shipped, or no such count is stored for it. wake: the wake-loop control; attn: attention only; "
        "full: full attention (hover a heading for its name). The charts below show every depth, with 95% intervals."
    )
summary = pl.DataFrame(
    [
        {
            "checkpoint": r["checkpoint"],
            "preset": r["preset"],
            "task": r["task"],
            "variant": r["variant"],
            "N": r["passes"],
        }
        for r in rows
    ],
    schema={"checkpoint": pl.String, "preset": pl.String, "task": pl.String, "variant": pl.String, "N": pl.Int64},
)
with st.expander(f"The {len(rows)} checkpoints"):
    st.dataframe(summary, hide_index=True, width="stretch")

if table is not None:
    for preset in table["preset"].unique(maintain_order=True).to_list():  # a preset fixes the task and its depths
        st.subheader(f"{preset}: accuracy vs sleep passes")
        sub = table.filter(pl.col("preset") == preset)
        for note in (note for where, note in left_out if where == preset):
            st.info(note)
        metrics = [m for m in METRICS if sub.filter(pl.col("metric") == m).height]
        judged = headline_metric(sub)
        metrics.sort(key=lambda m: m != judged)  # the count the task is judged on first
        for start in range(0, len(metrics), 2):  # two charts a row
            cols = st.columns(2)
            for col, metric in zip(cols, metrics[start : start + 2]):
                with col:
                    st.plotly_chart(accuracy_vs_passes(sub, metric=metric), key=f"acc_{preset}_{metric}")
        sources = sorted({r["source"] for r in rows if r["preset"] == preset})
        st.caption(
            f"From {' and '.join(sources)}: held-out examples, 95% Wilson intervals. `{results_command()}` "
            "recomputes them."
        )
        if not any(s.startswith("RESULTS.json") for s in sources):
            for title, body in session.results_sections(preset):  # where the per-answer depth overstates
                with st.expander(f"{preset}: {title} (from checkpoints/RESULTS.md)", expanded=True):
                    st.markdown(body)

st.subheader("Model cards")
for name in names:
    with st.expander(name):
        st.markdown(data.card(name))
