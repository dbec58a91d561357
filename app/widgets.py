"""Pieces shared by the pages: the example picker and the token strip."""

from __future__ import annotations

import html

import polars as pl
import streamlit as st

from app import data
from app.state import MAX_SEED, View
from sleepcore.tasks.base import WrongAnswersError

STRIP_CSS = """
<style>
.sc-strip{display:flex;flex-wrap:wrap;gap:10px;font-family:ui-monospace,monospace;font-size:15px}
.sc-win{border:2px solid #bbb;border-radius:8px;padding:6px 8px 4px}
.sc-win.context{background:#f3f6fb}.sc-win.current{border-color:#0072B2;box-shadow:0 0 0 2px #0072B255}
.sc-win .lbl{font-size:11px;color:#555;margin-bottom:3px}
.sc-tok{display:inline-block;padding:1px 4px;margin:1px;border-radius:4px;background:#fff;border:1px solid #ddd}
.sc-tok.scored{background:#fff4d6;border-color:#E69F00}.sc-tok.pad{color:#aaa}
.sc-tok sub{color:#b35c00;font-size:11px}
</style>
"""


def token_strip(tokens: pl.DataFrame, current_window: int | None = None, example: int = 0) -> str:
    """HTML of one example's tokens grouped by window; context windows (slept on, then evicted) shaded,
    scored positions show the expected answer as a subscript."""
    rows = tokens.filter(pl.col("example") == example).sort("position")
    parts = [STRIP_CSS, '<div class="sc-strip">']
    for (w,), win in rows.group_by("window", maintain_order=True):
        kind = win["kind"][0]
        cls = f"sc-win {kind}" + (" current" if w == current_window else "")
        label = "context: slept on, then evicted" if kind == "context" else "wake: read out"
        parts.append(f'<div class="{cls}"><div class="lbl">window {w} · {label}</div>')
        for r in win.iter_rows(named=True):
            tok = html.escape(r["token"])
            tcls = "sc-tok" + (" scored" if r["scored"] else "") + (" pad" if r["token"] == "<pad>" else "")
            sub = f"<sub>={html.escape(r['target_token'] or '')}</sub>" if r["scored"] else ""
            parts.append(f'<span class="{tcls}">{tok}{sub}</span>')
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def probes_held(probes: pl.DataFrame) -> str:
    """What a probes table holds, for a message: each layer's models ("layer 1: the trained and the untrained
    model; layer 3: the untrained model only")."""
    models = {"pass1": "the trained", "trained": "the trained", "random_init": "the untrained"}
    held = probes.group_by("layer").agg(pl.col("baseline").unique()).sort("layer")
    parts = []
    for layer, baselines in held.iter_rows():
        kinds = sorted({models.get(b, repr(b)) for b in baselines}, key=lambda k: (k != "the trained", k))
        parts.append(f"layer {layer}: {' and '.join(kinds)} model" + (" only" if len(kinds) == 1 else ""))
    return "; ".join(parts) or "no rows"


def _keep_text(shown_for: tuple) -> None:
    """An edit of the example's text, kept for the example it was made on (see pick_example)."""
    st.session_state["custom_kept"] = (shown_for, st.session_state["custom_text"])


def _keep_use() -> None:
    st.session_state["use_kept"] = st.session_state["use_custom"]


def pick_example(name: str, view: View, where=st.sidebar) -> tuple[int, int, str | None]:
    """Depth and seed of a seeded example (kept in the URL), or a custom example typed as the task's text.

    Returns (depth, seed, custom text or None). A custom text that does not parse shows st.error and falls back to
    the seeded example, so the page keeps working.
    """
    shape = data.shape(name)
    depth = where.selectbox(
        "Question depth",
        shape.depths,
        help="Rule 110: steps t · Depo: hops k · gsm: operations",
        key="depth",
        **data.initial("depth", view.depth, list(shape.depths)),
    )
    seed = int(
        where.number_input("Example seed", 0, MAX_SEED - 1, step=1, key="seed", **data.initial("seed", view.seed))
    )
    data.url().update({"depth": str(depth), "seed": str(seed)})
    custom = None
    with where.expander("Type your own example"):
        task = data.loaded(name).task
        st.caption(
            f"{task.seq_len} tokens separated by spaces; `|` between windows is optional; answers are "
            "recomputed: the `[=…]` marks show them, and after an edit the example runs with its problem's answers "
            + (
                "(in the marks, and as the token after each `<ans>`, which later queries read) "
                if task.shows_answers
                else "(marks that no longer hold are ignored) "
            )
            + "and offers to write them in. "
            "Windows and tokens are counted from 0. Valid tokens: "
            + " ".join(f"`{t}`" for t in task.vocab.tokens[:40])
            + (" …" if len(task.vocab) > 40 else "")
        )
        # The text follows the seeded example (checkpoint, depth, seed) until the user edits it. Text and toggle are
        # kept outside their widgets, which Streamlit resets on a page that does not draw them (and on another page
        # that does), and given to them before they are drawn on every run: value= is read only at creation.
        shown_for = (name, depth, seed)
        kept = st.session_state.get("custom_kept")
        if not kept or kept[0] != shown_for:
            kept = st.session_state["custom_kept"] = (shown_for, data.render(name, depth, seed))
        st.session_state["custom_text"] = kept[1]
        st.session_state["use_custom"] = st.session_state.get("use_kept", False)
        text = st.text_area("Example", height=150, key="custom_text", on_change=_keep_text, args=(shown_for,))
        use = st.toggle("Use this example", key="use_custom", on_change=_keep_use)
    if use:
        try:
            try:
                data.trace(name, depth, seed, custom=text)
                custom = text
            except WrongAnswersError as e:  # a problem edited after its answers were written: run it, and say so
                custom, changes = task.fill_answers(text)
                data.trace(name, depth, seed, custom=custom)
                _say_filled(str(e), changes, name, shown_for)
        except ValueError as e:
            custom = None
            st.error(
                f"That example does not parse: {str(e).rstrip('.')}. Showing the seeded example (depth {depth}, "
                f"seed {seed}) instead; turn off “Use this example” in the sidebar, or fix the text."
            )
    return depth, seed, custom


def _say_filled(error: str, changes: list[str], name: str, shown_for: tuple) -> None:
    """An info that the typed example runs with its problem's answers, not those typed (in its `[=…]` marks, or
    shown after its queries, where later queries read them), and a button that writes them into the text."""
    if changes:
        listed = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
        st.info(
            "Later queries read each answer shown after `<ans>`, and these are not the problem's: the example runs "
            f"with the problem's answers instead ({listed})."
        )
    else:
        st.info(f"{error}. The example runs with the answers its problem gives (the `[=…]` marks are ignored).")
    st.button(
        "Write the problem's answers into the example",
        key="fill_answers",
        on_click=_keep_filled,
        args=(name, shown_for),
    )


def _keep_filled(name: str, shown_for: tuple) -> None:
    """The text as typed now (an edit may arrive with the click), with its problem's answers written in."""
    try:
        filled, _ = data.loaded(name).task.fill_answers(st.session_state["custom_text"])
    except ValueError:  # the new edit does not read: leave it for the next run to say why
        return
    st.session_state["custom_kept"] = (shown_for, filled)
