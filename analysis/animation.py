"""Sleep as an animation: the fast-weight state of one layer and head, frame by frame through the context
windows and their passes. Plotly frames, so playback runs in the browser without the server."""

from __future__ import annotations

import numbers

import plotly.graph_objects as go

from analysis.figures import DIVERGING, _figure
from sleepcore.trace import Trace, sleep_passes


def sleep_steps(trace: Trace) -> list[tuple[int, int]]:
    """(window, pass) of every sleep step in the trace, in the order the model ran them."""
    steps = []
    for w in trace.meta["windows"]:
        if w["kind"] == "context":
            steps += [(w["index"], p) for p in range(1, sleep_passes(trace.meta) + 1)]
    return steps


def _is_index(i) -> bool:
    return isinstance(i, numbers.Integral) and not isinstance(i, bool)


def _check_index(what: str, i, n: int) -> None:
    """ValueError unless i is an integer in 0..n-1 (a negative one would silently count from the end)."""
    if not _is_index(i) or not 0 <= i < n:
        raise ValueError(f"{what} must be an integer from 0 to {n - 1} (this trace has {n} {what}s); got {i!r}")


def sleep_animation(
    trace: Trace, layer: int, head: int, example: int = 0, start: tuple[int, int] | None = None
) -> go.Figure:
    """Heatmap of S [K, V] for (layer, head) after each sleep step, with play/pause and a step slider.

    The colour scale is fixed over all frames (symmetric about zero), so growth and change are visible.
    start: the (window, pass) shown before playing; defaults to the first step.
    """
    steps = sleep_steps(trace)
    if not steps:
        raise ValueError("this trace has no context windows, so there is no sleep to animate")
    fw = [i for i, m in enumerate(trace.meta["layers"]) if m == "fw"]
    if not fw:
        raise ValueError(
            f"this model has no fast-weight layer (its layers: {trace.meta['layers']}): no state to animate"
        )
    if not _is_index(layer) or layer not in fw:
        raise ValueError(f"layer must be one of the fast-weight layers {fw}; got {layer!r}")
    shape = trace.state(*steps[0], layer).shape  # [examples, heads, K, V]
    _check_index("head", head, shape[1])
    _check_index("example", example, shape[0])
    states = [trace.state(w, p, layer)[example, head].numpy() for w, p in steps]  # each [K, V]
    bound = max(float(abs(s).max()) for s in states) or 1.0
    names = [f"window {w} · pass {p}" for w, p in steps]
    first = steps.index(start) if start in steps else 0

    def heat(s):
        return go.Heatmap(
            z=s, zmin=-bound, zmax=bound, colorscale=DIVERGING, hovertemplate="k=%{y} v=%{x}: %{z:.3g}<extra></extra>"
        )

    fig = _figure(f"Layer {layer}, head {head}: S after {names[first]}")
    fig.add_trace(heat(states[first]))
    fig.frames = [
        go.Frame(data=[heat(s)], name=n, layout=dict(title_text=f"Layer {layer}, head {head}: S after {n}"))
        for s, n in zip(states, names)
    ]
    play = dict(frame=dict(duration=700, redraw=True), transition=dict(duration=0), fromcurrent=True)
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                y=-0.12,
                xanchor="left",
                yanchor="top",
                buttons=[
                    dict(label="▶ play", method="animate", args=[None, play]),
                    dict(
                        label="❚❚ pause",
                        method="animate",
                        args=[[None], dict(mode="immediate", frame=dict(duration=0))],
                    ),
                ],
            )
        ],
        sliders=[
            dict(
                active=first,
                x=0.2,
                len=0.8,
                y=-0.08,
                currentvalue=dict(prefix="after "),
                steps=[
                    dict(
                        label=n,
                        method="animate",
                        args=[[n], dict(mode="immediate", frame=dict(duration=0, redraw=True))],
                    )
                    for n in names
                ],
            )
        ],
    )
    fig.update_xaxes(title_text="value dim")
    fig.update_yaxes(title_text="key dim", autorange="reversed")
    return fig
