"""Compare: two checkpoints of one task side by side on the same example, passes aligned."""

from dataclasses import replace
from functools import partial

import polars as pl
import streamlit as st

from analysis.figures import state_heatmap
from app import data, widgets
from app.state import not_comparable, parse_view
from sleepcore.trace import is_wake_loop, sleep_passes

st.title("Compare")
left_name = data.pick_checkpoint("ckpt", "Left checkpoint")
shape = data.load_shape(left_name, "ckpt", "Left checkpoint", "the first by name")
task = data.info(left_name)["task"]

other_task = partial(not_comparable, left_name, task)  # why a checkpoint is not compared with the left one


infos = data.readable_infos()
same_task = [n for n, info in infos.items() if info["task"] == task]
others = [n for n in same_task if n != left_name]  # a checkpoint is not compared with itself
params = data.url()
asked = params.get("cmp")
if not others:
    params.pop("cmp", None)
    elsewhere = f"{other_task(asked, infos[asked]['task'])}, and " if asked in infos and asked != left_name else ""
    st.info(
        f"{elsewhere}{left_name} is the only checkpoint trained on its task ({task['name']}, with its settings): "
        "there is nothing to compare it with. Pick another left checkpoint, or train another model of this task."
    )
    data.stop()
left_passes = infos[left_name]["sleep"]["passes"] if left_name in infos else 1
# a sleep model (not a baseline) with the most different N
default_right = max(
    others,
    key=lambda n: (infos[n].get("variant", "hybrid") == "hybrid", abs(infos[n]["sleep"]["passes"] - left_passes)),
)
if asked == left_name:  # the left side moved onto the right one, or a URL named it twice: one column, not two
    params.pop("cmp")
    st.info(
        f"A checkpoint is not compared with itself: comparing {left_name!r} with {default_right!r}. "
        f"Others to compare it with: {', '.join(others)}."
    )
elif asked in infos and infos[asked]["task"] != task:  # from the URL, or left over when the left side changed task
    params.pop("cmp")
    st.info(f"{other_task(asked, infos[asked]['task'])}; comparing {left_name!r} with {default_right!r}.")
right_name = data.pick_checkpoint("cmp", "Right checkpoint", default=default_right, names=others)
right_shape = data.load_shape(
    right_name, "cmp", "Right checkpoint", "the sleep model whose N differs most from the left one's"
)

# The pass slider spans the model that sleeps most, so the URL may hold any of its passes.
most_passes = max(shape.passes, right_shape.passes)  # the pass slider's range; it is shown when it is > 1
view = parse_view(params, left_name, replace(shape, passes=most_passes), cmp=right_name)
view = view.only(("depth", "seed") + (("pass",) if most_passes > 1 else ()))  # the controls this page shows
data.warn(view)
depth, seed, custom = widgets.pick_example(left_name, view)
traces = {n: data.trace(n, depth, seed, custom) for n in (left_name, right_name)}


# As in the explorer: a model's pass is one of its N passes, sleep passes on every context window or, for the wake
# loop, wake passes on the window it answers from; the state it shows is its context window's pass, clamped to the
# passes that window holds (the wake loop writes each context window once).
most = max(t.meta["passes"] for t in traces.values())
kinds = sorted({"wake" if is_wake_loop(t.meta) else "sleep" for t in traces.values()})
pass_ = (
    st.slider(
        f"{' or '.join(kinds).capitalize()} pass (each model shows its own last pass if it has fewer"
        + ("; the wake loop's are wake passes, run when answering" if kinds == ["sleep", "wake"] else "")
        + ")",
        1,
        most,
        key="pass",
        **data.initial("pass", min(view.pass_, most)),
    )
    if most > 1
    else 1
)
if most > 1:  # without a slider the URL's pass is left to the pages that show one
    params["pass"] = str(pass_)
st.html(widgets.token_strip(traces[left_name].tables["tokens"], None))


def _readout(name: str, wake_loop: bool, fw: bool, p: int) -> tuple[str, str]:
    """The answers metric's label and help for a model at pass p: what its passes are, where it has any."""
    if wake_loop:
        return f"Answers right after {p} wake pass(es)", "The anytime readout: the wake loop truncated at this pass."
    if fw:
        return (
            f"Answers right if every context window slept {p} pass(es)",
            "The anytime readout: sleep truncated at this pass on every context window.",
        )
    if data.info(name)["sleep"]["window"] is None:
        return "Answers right (full attention: it never evicts, so it has no sleep)", (
            "It reads the whole sequence as one window and answers in one ordinary pass."
        )
    return "Answers right (attention only: no fast weights carry anything across an eviction)", (
        "Its passes on a context window run over attention layers only, and nothing they compute outlives the "
        "window, so every number of passes gives these answers."
    )


for col, (n, trace) in zip(st.columns(2), traces.items()):
    with col:
        wake_loop = is_wake_loop(trace.meta)
        p = min(pass_, trace.meta["passes"])
        shown_pass = min(p, sleep_passes(trace.meta))
        loop = " passes when answering: the wake loop" if wake_loop else ""
        st.subheader(f"{n} (N = {trace.meta['passes']}{loop})")
        context = [w["index"] for w in trace.meta["windows"] if w["kind"] == "context"]
        fw = [i for i, m in enumerate(trace.meta["layers"]) if m == "fw"]
        if fw:
            S = trace.state(context[-1], shown_pass, fw[-1])[0]
            written = (
                f"its one write of window {context[-1]}"
                if wake_loop
                else f"sleep pass {shown_pass} of window {context[-1]}"
            )
            st.plotly_chart(state_heatmap(S, title=f"Layer {fw[-1]} after {written}"), key=f"state_{n}")
        anytime = trace.anytime.filter(pl.col("example") == 0)
        by_n = (
            anytime.group_by("n")
            .agg(right=pl.col("correct").sum(), of=pl.len(), p_target=pl.col("p_target").mean())
            .sort("n")
        )
        now = by_n.filter(pl.col("n") == p)
        label, about = _readout(n, wake_loop, bool(fw), p)
        st.metric(label, f"{int(now['right'][0])} / {int(now['of'][0])}", help=about)
        st.dataframe(by_n, hide_index=True, width="stretch")
