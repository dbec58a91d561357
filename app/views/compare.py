"""Compare: two checkpoints of one task side by side on the same example, passes aligned."""

from dataclasses import replace

import polars as pl
import streamlit as st

from analysis.figures import state_heatmap
from app import data, widgets
from app.state import parse_view
from sleepcore.trace import sleep_passes

st.title("Compare")
left_name = data.pick_checkpoint("ckpt", "Left checkpoint")
try:
    shape = data.shape(left_name)
except ValueError as e:
    st.error(f"Checkpoint {left_name!r} cannot be loaded: {e}")
    st.stop()
task = data.info(left_name)["task"]
infos = data.readable_infos()
same_task = [n for n, info in infos.items() if info["task"] == task]
others = [n for n in same_task if n != left_name] or same_task
left_passes = infos[left_name]["sleep"]["passes"] if left_name in infos else 1
# a sleep model (not a baseline) with the most different N
default_right = max(
    others,
    key=lambda n: (infos[n].get("variant", "hybrid") == "hybrid", abs(infos[n]["sleep"]["passes"] - left_passes)),
)
asked = st.query_params.get("cmp")
if asked in infos and infos[asked]["task"] != task:  # from the URL, or left over when the left side changed task
    st.query_params.pop("cmp")
    st.info(f"{asked!r} is trained on a different task from {left_name!r}; comparing with {default_right!r}.")
right_name = data.pick_checkpoint("cmp", "Right checkpoint", default=default_right, names=same_task)
try:
    right_shape = data.shape(right_name)
except ValueError as e:
    st.error(f"Checkpoint {right_name!r} cannot be loaded: {e}")
    st.stop()

# The pass slider spans the model that sleeps most, so the URL may hold any of its passes.
view = parse_view(
    st.query_params, left_name, replace(shape, passes=max(shape.passes, right_shape.passes)), cmp=right_name
)
for message in view.messages:
    st.warning(message)
depth, seed, custom = widgets.pick_example(left_name, view)
traces = {n: data.trace(n, depth, seed, custom) for n in (left_name, right_name)}
most = max(sleep_passes(t.meta) for t in traces.values())
pass_ = (
    st.slider(
        "Sleep pass (each model shows its own last pass if it has fewer)", 1, most, min(view.pass_, most), key="pass"
    )
    if most > 1
    else 1
)
st.query_params["pass"] = str(pass_)
st.html(widgets.token_strip(traces[left_name].tables["tokens"], None))

for col, (n, trace) in zip(st.columns(2), traces.items()):
    with col:
        N = sleep_passes(trace.meta)
        p = min(pass_, N)
        loop = " passes when answering: the wake loop" if trace.meta.get("loop", "sleep") == "wake" else ""
        st.subheader(f"{n} (N = {trace.meta['passes']}{loop})")
        context = [w["index"] for w in trace.meta["windows"] if w["kind"] == "context"]
        fw = [i for i, m in enumerate(trace.meta["layers"]) if m == "fw"]
        if fw:
            S = trace.state(context[-1], p, fw[-1])[0]
            st.plotly_chart(
                state_heatmap(S, title=f"Layer {fw[-1]} after pass {p} of window {context[-1]}"), key=f"state_{n}"
            )
        anytime = trace.anytime.filter(pl.col("example") == 0)
        by_n = (
            anytime.group_by("n")
            .agg(right=pl.col("correct").sum(), of=pl.len(), p_target=pl.col("p_target").mean())
            .sort("n")
        )
        now = by_n.filter(pl.col("n") == p)
        st.metric(f"Answers right after pass {p}", f"{int(now['right'][0])} / {int(now['of'][0])}")
        st.dataframe(by_n, hide_index=True, width="stretch")
