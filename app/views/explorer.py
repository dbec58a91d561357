"""Sleep explorer: step through the context windows and sleep passes of one example and watch the fast-weight
state take in the window before it is evicted."""

import polars as pl
import streamlit as st

from analysis import session
from analysis.animation import sleep_animation
from analysis.figures import (
    anytime_readout,
    attention_map,
    attribution_strip,
    probe_curves,
    state_change,
    state_heatmap,
)
from app import data, widgets
from sleepcore.trace import is_wake_loop, sleep_passes

st.title("Sleep explorer")
name, shape, view = data.page_view()
if not shape.fw_layers:  # attention-only baselines: no state to step through (and no layer to index)
    if data.info(name)["sleep"]["window"] is None:  # the full-attention reference never evicts
        st.info(
            f"{name} has no fast-weight layers and never evicts: its attention sees the whole sequence, so nothing "
            "has to be consolidated and there is no sleep to explore."
        )
    else:
        st.info(
            f"{name} has no fast-weight layers: nothing crosses a window boundary, so there is no sleep to explore."
        )
    data.stop()

depth, seed, custom = widgets.pick_example(name, view)
trace = data.trace(name, depth, seed, custom)
tokens = trace.tables["tokens"]
N = trace.meta["passes"]
wake_loop = is_wake_loop(trace.meta)
layers = trace.meta["layers"]
context = [w["index"] for w in trace.meta["windows"] if w["kind"] == "context"]

c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
window = (
    c1.select_slider(
        "Context window",
        context,
        key="window",
        **data.initial("window", view.window if view.window in context else context[-1]),
    )
    if len(context) > 1
    else context[0]
)
pass_ = (
    c2.slider("Wake pass" if wake_loop else "Sleep pass", 1, N, key="pass", **data.initial("pass", view.pass_))
    if N > 1
    else 1
)
shown_pass = min(pass_, sleep_passes(trace.meta))  # the context window's pass the state and attention views show
layer = c3.selectbox(
    "Fast-weight layer", shape.fw_layers, key="layer", **data.initial("layer", view.layer, shape.fw_layers)
)
heads = list(range(shape.heads))
head = c4.selectbox("Head", heads, key="head", **data.initial("head", view.head, heads))
data.url().update({"window": str(window), "pass": str(pass_), "layer": str(layer), "head": str(head)})

if wake_loop:
    st.info(
        f"{name} is the wake-loop control: it writes each context window into S once and spends its N = {N} passes "
        "on the window it answers from, each from the S that window began with. So there is no sleep to step "
        "through: the state and attention views show that one write, and the pass slider sets how many wake passes "
        "'If it woke now' and 'Attributions' run."
    )
st.html(widgets.token_strip(tokens, window))

VIEWS = ["Fast-weight state", "Attention", "If it woke now", "Attributions", "Probes"]
# Only the chosen view is built: a pass step then costs one view's figures, not all five (st.tabs builds every tab).
shown_view = st.segmented_control("View", VIEWS, default=VIEWS[0], key="view") or VIEWS[0]

if shown_view == "Fast-weight state":
    left, right = st.columns(2)
    S = trace.state(window, shown_pass, layer)[0]  # [H, K, V]
    with left:
        st.plotly_chart(
            state_heatmap(S[head : head + 1], title=f"S after window {window}, pass {shown_pass}"), key="state_heatmap"
        )
    with right:
        prev = trace.state(window, shown_pass - 1, layer)[0] if shown_pass > 1 else None
        if prev is not None:
            st.plotly_chart(
                state_heatmap((S - prev)[head : head + 1], title=f"Change from pass {shown_pass - 1}"),
                key="state_delta",
            )
        else:
            st.plotly_chart(state_change(trace.tables["state"].filter(pl.col("layer") == layer)), key="state_change")
    st.plotly_chart(sleep_animation(trace, layer, head, start=(window, shown_pass)), key="state_animation")

if shown_view == "Attention":
    attn_layers = [i for i, m in enumerate(layers) if m == "attn"]
    if not attn_layers:
        st.info("This model has no attention layers.")
    else:
        a_layer = st.selectbox("Attention layer", attn_layers, key="attn_layer")
        start = next(w for w in trace.meta["windows"] if w["index"] == window)
        words = tokens.filter(pl.col("example") == 0).sort("position")["token"][start["start"] : start["end"]].to_list()
        st.plotly_chart(
            attention_map(
                trace.attn(window, shown_pass, a_layer)[0],
                words,
                title=f"Window {window}, pass {shown_pass}, layer {a_layer}",
            ),
            key="attention",
        )

if shown_view == "If it woke now":
    anytime = trace.anytime.filter(pl.col("example") == 0)
    now = anytime.filter(pl.col("n") == pass_)
    right_now = int(now["correct"].sum())
    st.metric(
        f"Answers right after {pass_} wake pass(es)"
        if wake_loop
        else f"Answers right if every context window slept {pass_} pass(es)",
        f"{right_now} / {now.height}",
        help="The anytime readout: the wake loop truncated at this pass."
        if wake_loop
        else "The anytime readout: sleep truncated at this pass on every context window.",
    )
    shown = now.sort("position").select(["position", "depth", "target_token", "predicted_token", "p_target", "correct"])
    st.dataframe(shown, hide_index=True, width="stretch")
    positions = shown["position"].to_list()
    pos = st.selectbox("Answer position", positions, key="anytime_position")
    st.plotly_chart(anytime_readout(anytime, 0, pos), key="anytime")

if shown_view == "Attributions":
    st.caption(
        "Integrated gradients of the answer logit with respect to the evicted tokens' embeddings, through "
        + (
            f"the wake loop, truncated at pass {pass_}."
            if wake_loop
            else f"the sleep passes, with sleep truncated at pass {pass_}."
        )
    )
    positions = tokens.filter(pl.col("scored") & (pl.col("example") == 0))["position"].to_list()
    a_pos = st.selectbox("Answer position", positions, key="attr_position")
    if st.button("Compute attributions", key="attr_go"):
        st.session_state["attr_for"] = (name, depth, seed, custom, pass_, a_pos)
    if st.session_state.get("attr_for") == (name, depth, seed, custom, pass_, a_pos):
        attr = data.attributions(name, depth, seed, custom, pass_, a_pos)
        st.plotly_chart(attribution_strip(attr, tokens, 0, a_pos, pass_), key="attribution")

if shown_view == "Probes":
    probes, problem = data.shipped_probes(name)
    if problem:  # a damaged or foreign probes.parquet: what is wrong with it (the Probe lab can fit probes instead)
        st.warning(
            f"The probe table shipped with this checkpoint is not used: {problem}. The Probe lab page computes one."
        )
    elif probes is None:
        st.info("No probe table ships with this checkpoint. The Probe lab page computes one.")
    else:
        # the trained model at every pass, as the Probe lab draws it: pass 1 is stored as "pass1", passes 2..N as
        # "trained"; the probes read the state a context window holds after sleep pass n (the shown pass)
        curve = session.sleep_curve(probes.filter(pl.col("layer") == layer))
        facts = curve["fact"].unique().sort().to_list()
        if not facts:
            st.info(
                f"The probe table shipped with this checkpoint holds no probes of the trained model at layer {layer}; "
                f"it holds {widgets.probes_held(probes)}."
            )
        else:
            fact = st.selectbox("Fact", facts, key="probe_fact") if len(facts) > 1 else facts[0]
            fig = probe_curves(curve, fact=fact, title=f"Probe accuracy: {fact}, layer {layer}")
            fig.add_vline(x=shown_pass, line=dict(dash="dot", width=3), annotation_text=f"pass {shown_pass}")
            st.plotly_chart(fig, key="probe_position")
