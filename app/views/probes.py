"""Probe lab: which facts of an evicted window can a linear probe read off the fast weights, pass by pass."""

import polars as pl
import streamlit as st

from analysis import session
from analysis.figures import probe_curves
from analysis.probes import PROBES_FILE
from app import data, widgets
from sleepcore.trace import sleep_passes

st.title("Probe lab")
# No window or head to choose here; a pass slider only for a model that sleeps more than once per context window.
name, shape, view = data.page_view(
    uses=lambda n: ("depth", "seed", "layer") + (("pass",) if sleep_passes(data.info(n)["sleep"]) > 1 else ())
)
if not shape.fw_layers:  # attention-only baselines: no fast weights to probe
    st.info(f"{name} has no fast-weight layers, so there are no fast weights to probe.")
    data.stop()

probes, problem = data.shipped_probes(name)
if probes is None:
    if problem:  # a damaged or foreign probes.parquet: what is wrong with it, then the same offer as where none ships
        st.warning(f"The probe table shipped with this checkpoint is not used: {problem}.")
    else:
        st.info(f"No probe table ships with this checkpoint (`{data.redo('probe', name, PROBES_FILE)}` writes one).")
    st.caption("Compute one here: linear probes on held-out examples, one seed.")
    examples = st.select_slider("Examples", [64, 128, 256, 512], value=128, key="probe_examples")
    if st.button("Fit probes", key="fit_probes"):
        st.session_state["probes_for"] = (name, examples)
    if st.session_state.get("probes_for") != (name, examples):
        data.stop()
    probes = data.probes(name, examples, 0)

facts = probes["fact"].unique().sort().to_list()
c1, c2, c3 = st.columns(3)
fact = c1.selectbox("Fact", facts, key="fact")
layer = c2.selectbox(
    "Fast-weight layer", shape.fw_layers, key="layer", **data.initial("layer", view.layer, shape.fw_layers)
)
depths = probes.filter(pl.col("fact") == fact)["fact_depth"].unique().sort().to_list()
fact_depth = c3.selectbox("Fact depth", depths, index=min(1, len(depths) - 1), key="fact_depth")
data.url()["layer"] = str(layer)

sub = probes.filter((pl.col("fact") == fact) & (pl.col("layer") == layer))
curve = session.sleep_curve(sub)
untrained = sub.filter(pl.col("baseline") == "random_init")
if curve.is_empty() and untrained.is_empty():
    held = widgets.probes_held(probes.filter(pl.col("fact") == fact))
    st.info(f"The probe table holds no probes of {fact} at layer {layer}; of {fact} it holds {held}.")
else:
    left, right = st.columns(2)
    with left:
        if curve.is_empty():
            st.info(f"The probe table holds no probes of {fact} on the trained model at layer {layer}.")
        else:
            title = f"Trained model: {fact}, layer {layer}"
            st.plotly_chart(probe_curves(curve, fact=fact, title=title), key="probe_trained")
    with right:
        if untrained.is_empty():
            st.info(f"The probe table holds no probes of {fact} on the untrained model at layer {layer}.")
        else:
            title = "Untrained model (baseline)"
            st.plotly_chart(probe_curves(sub, fact=fact, baseline="random_init", title=title), key="probe_random")
    table = (
        curve.filter(pl.col("fact_depth") == fact_depth)
        .group_by("pass")
        .agg(pl.col("acc", "acc_lo", "acc_hi", "control_acc", "selectivity").mean())
        .sort("pass")
    )
    if not table.is_empty():
        st.markdown(
            f"**Depth {fact_depth}:** probe accuracy, its 95% interval, the control task and selectivity "
            "(accuracy minus control) at each pass, averaged over seeds."
        )
        st.dataframe(table, hide_index=True, width="stretch")
    elif not curve.is_empty():
        st.info(f"The probe table holds no probes of {fact} at depth {fact_depth} on the trained model.")

st.subheader("Ask the fast weights about the shown example")
depth, seed, custom = widgets.pick_example(name, view)
# the states a probe reads: N passes per context window, or the wake loop's one write of it
sleeps = sleep_passes(data.info(name)["sleep"])  # its sleep config holds passes and loop, as a trace's meta does
pass_ = 1
if sleeps > 1:  # (the wake loop's one write leaves the URL's pass, a wake pass, to the pages that show those)
    pass_ = st.slider("After sleep pass", 1, sleeps, key="pass", **data.initial("pass", min(view.pass_, sleeps)))
    data.url()["pass"] = str(pass_)
if st.button("Query", key="query"):
    st.session_state["query_for"] = (name, depth, seed, custom, layer, pass_, fact_depth)
if st.session_state.get("query_for") == (name, depth, seed, custom, layer, pass_, fact_depth):
    try:
        answers = data.query_fact(name, depth, seed, custom, layer, pass_, fact_depth)
        st.metric("Items the probe reads right", f"{int(answers['right'].sum())} / {answers.height}")
        st.dataframe(answers, hide_index=True, width="stretch")
    except session.NoSuchFact as e:  # a question this example cannot answer: not an error
        st.info(f"{str(e).capitalize()}: pick a smaller fact depth, or an example of a larger question depth.")
    except ValueError as e:
        st.error(str(e))
