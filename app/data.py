"""Cached access to checkpoints and traces. Models live in st.cache_resource; traces in st.cache_data with a
bounded number of entries, so moving a slider reads a cached trace and never re-runs the model."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import NoReturn

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from analysis import session
from app.state import EXAMPLE_KEYS, SHOWN_KEYS, Shape

# The checkpoint a page opens on when the URL names none, if it exists: the shipped model whose sleep passes most
# visibly consolidate (each pass adds about one hop; checkpoints/NOTES/depo-k4.md). Otherwise the first by name.
FEATURED = "depo-k4-n4"


# The URL holds the view (checkpoint, example, window, pass, ...). Each write to st.query_params sends the browser a
# message, and the browser makes a history entry of each: choosing another checkpoint made up to eight, so Back
# walked through half-written URLs. The pages read and write this run's copy instead, url(); main.py opens it from
# the browser's URL (begin_url) and sends it back once, when the run ends (end_url): one history entry per change.


def begin_url(params: dict[str, str]) -> None:
    """Start this run's URL from `params` (the browser's, or those carried from the last page)."""
    st.session_state["url"] = dict(params)
    st.session_state["new_checkpoint"] = False  # pick_checkpoint sets it when the user chose another


def url() -> dict[str, str]:
    """This run's URL parameters: read them and write them here, never through st.query_params."""
    if "url" not in st.session_state:
        raise RuntimeError("the app's pages run through app/main.py (`sleepcore app`), which opens the URL")
    return st.session_state["url"]


def end_url() -> dict[str, str]:
    """Send this run's URL to the browser if the run changed it (one message, so one history entry); returns it."""
    params = dict(url())
    if params != st.query_params.to_dict():
        st.query_params.from_dict(params)
    return params


def stop() -> NoReturn:
    """st.stop() for the pages: this run's URL is sent first, as nothing reaches the browser after st.stop()."""
    end_url()
    st.stop()


def url_wins() -> bool:
    """True on a run whose view must come from the URL, not from the widgets' own state: a run that the browser's
    Back or Forward button started (the widgets still hold the view being left, and would write it over the URL
    the browser went back to), or one where the user chose another checkpoint (they hold the old one's view)."""
    if st.session_state.get("new_checkpoint"):
        return True
    ctx = get_script_run_ctx()
    return ctx is not None and ctx.is_history_navigation


def initial(key: str, value, options: list | None = None, arg: str = "value") -> dict:
    """The keyword that gives the widget `key` its value from the URL: `arg`=value, or index= into `options`.

    Streamlit reads that keyword only when it creates the widget. When the URL wins (url_wins) the widget exists
    already, so the URL's value is written to its session state instead, which also redraws it in the browser (no
    keyword is given then, which would clash). Dropping the widget's state would not: the browser kept showing the
    old value while the page used the new one."""
    if url_wins():
        st.session_state[key] = value
        return {}
    if options is not None:
        return {"index": options.index(value)}
    return {arg: value}


def checkpoints_place() -> str:
    """The folder the app's checkpoints come from, for messages: `checkpoints/`, or $SLEEPCORE_CHECKPOINTS's."""
    from sleepcore.checkpoint import ROOT_ENV, checkpoint_root

    return f"{checkpoint_root()} (${ROOT_ENV})" if os.environ.get(ROOT_ENV) else "checkpoints/"


def root_problem() -> str | None:
    """Why the checkpoints folder holds no checkpoints where it is not a folder (it does not exist, or is a file), in
    the CLI's words (require_checkpoints); None for a folder."""
    from sleepcore.checkpoint import CheckpointError, checkpoint_root, require_checkpoints

    root = checkpoint_root()
    if root.is_dir():
        return None
    try:
        require_checkpoints(root)
    except CheckpointError as e:
        return f"{str(e)[:1].upper()}{str(e)[1:]}."
    return None


def unusable(name: str) -> str | None:
    """Why the folder `name` in the checkpoints folder is not a checkpoint the app can use, from which of its two
    files it holds and its config.json (the weights are not read); None where no folder of that name holds either
    file, or where it can be used as far as that shows."""
    from sleepcore.checkpoint import checkpoint_root

    if len(Path(name).parts) != 1 or name in (".", "..") or Path(name).is_absolute():  # a name, never a path
        return None
    folder = checkpoint_root() / name
    try:
        config, weights = (folder / "config.json").is_file(), (folder / "model.safetensors").is_file()
    except (OSError, ValueError):  # a name too long for a file name, or with a NUL: no such folder
        return None
    if config != weights:
        return f"it has a {'config.json' if config else 'model.safetensors'} but no " + (
            "model.safetensors" if config else "config.json"
        )
    if not config:
        return None
    try:
        info(name)
    except ValueError as e:
        return str(e).splitlines()[0]
    return None


def incomplete() -> list[tuple[str, str]]:
    """(name, why) of each folder in the checkpoints folder with one of a checkpoint's two files but not the other:
    checkpoint_names leaves them out, and the overview names them."""
    from sleepcore.checkpoint import checkpoint_root

    try:
        folders = sorted(p.name for p in checkpoint_root().iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    names = set(checkpoint_names())
    return [(n, why) for n in folders if n not in names and (why := unusable(n))]


def shell(command: str) -> str:
    """A `sleepcore …` command as run from the repository's root on the checkpoints this app serves: with
    SLEEPCORE_CHECKPOINTS=… before it where they are not the repository's checkpoints/ (as results_command)."""
    from sleepcore.checkpoint import CHECKPOINT_ROOT, ROOT_ENV, checkpoint_root

    root = checkpoint_root()
    return command if root == CHECKPOINT_ROOT else f"{ROOT_ENV}={shlex.quote(str(root))} {command}"


def runnable(message: str) -> str:
    """A message from sleepcore or analysis with each command it offers (`write it again with: sleepcore …`,
    `` `sleepcore …` ``) as shell writes it: those messages give the command for the shell the app was started in."""
    return re.sub(r"(with: |`)sleepcore (?=[a-z])", lambda m: m.group(1) + shell("sleepcore "), message)


def served(name: str, file: str) -> str:
    """The path of `file` beside checkpoint `name` in the folder the app serves, as a command line gives it."""
    from sleepcore.checkpoint import checkpoint_root
    from sleepcore.results import _shown

    return shlex.quote(_shown(checkpoint_root() / name / file))


def redo(command: str, name: str, file: str) -> str:
    """`sleepcore COMMAND NAME --out PATH` (shell), the command that writes `file` beside checkpoint `name`."""
    from sleepcore.checkpoint import checkpoint_root
    from sleepcore.results import redo_command

    return shell(redo_command(command, checkpoint_root() / name, file))


@st.cache_data(ttl=60, show_spinner=False)
def checkpoint_names() -> list[str]:
    return session.checkpoint_names()


@st.cache_data(max_entries=64, show_spinner=False)
def info(name: str) -> dict:
    return session.checkpoint_info(name)


def readable_infos() -> dict[str, dict]:
    """The config of every checkpoint that can be read; a broken one is left out here (the overview names it)."""
    infos = {}
    for name in checkpoint_names():
        try:
            infos[name] = info(name)
        except ValueError:
            continue
    return infos


@st.cache_data(ttl=60, show_spinner=False)
def result_rows(names: tuple[str, ...]) -> tuple[list[dict], list[str]]:
    return session.result_rows(list(names))


@st.cache_data(ttl=60, show_spinner=False)
def preset_rows(name: str) -> list[dict]:
    return session.preset_rows(name)


@st.cache_data(max_entries=64, show_spinner=False)
def card(name: str) -> str:
    """The model card. Its own commands stay as shipped (they write into the repository's checkpoints/); only the
    line saying why a card cannot be shown, which offers `sleepcore ship --refresh-cards`, is completed by runnable."""
    text = session.model_card(name)
    return runnable(text) if text.startswith(f"*{name}") else text


@st.cache_resource(max_entries=6, show_spinner="Loading the checkpoint…")
def loaded(name: str) -> session.Loaded:
    return session.load(name)


def load_shape(name: str, key: str = "ckpt", label: str = "Checkpoint", default: str = "") -> Shape:
    """shape(name) of the checkpoint pick_checkpoint(key, label) chose; an error that says which one, and how it
    came to be shown, where it cannot be loaded, and the page stops. `default`: how pick_checkpoint's default is
    chosen, where the URL named none (or none that can be shown)."""
    try:
        return shape(name)
    except ValueError as e:
        how = default or "the one this page opens on"
        chosen = (
            f" ({how}, as the URL names none that can be shown)" if st.session_state.get(f"defaulted_{key}") else ""
        )
        why = str(e).rstrip(".")
        st.error(f"{label} {name!r}{chosen} cannot be loaded: {why}. Pick another {label.lower()} in the sidebar.")
        stop()


def shape(name: str) -> Shape:
    ld = loaded(name)
    mixers = [m.strip() for m in ld.info["model"]["layers"].split(",")]
    return Shape(
        depths=tuple(ld.task.depths),
        context_windows=ld.task.context_windows,
        passes=ld.info["sleep"]["passes"],
        fw_layers=tuple(i for i, m in enumerate(mixers) if m == "fw"),
        heads=ld.info["model"]["fw_heads"],
    )


@st.cache_data(max_entries=32, show_spinner=False)
def trace(name: str, depth: int, seed: int, custom: str | None = None, passes: int | None = None):
    """The trace of one example: seeded (depth, seed) or typed (custom text). Raises ValueError for bad text."""
    example = _example(name, depth, seed, custom)
    with st.spinner("Recording every window, pass and layer…"):
        return session.trace_example(loaded(name), example, passes=passes)


def render(name: str, depth: int, seed: int, custom: str | None = None) -> str:
    return loaded(name).task.render(_example(name, depth, seed, custom))


VIEW_KEYS = SHOWN_KEYS  # URL parameters that describe a view of one checkpoint


def pick_checkpoint(
    key: str = "ckpt",
    label: str = "Checkpoint",
    default: str | None = None,
    where=st.sidebar,
    names: list[str] | None = None,
) -> str:
    """A checkpoint chosen by name (from the URL if valid; from `names`, default every checkpoint), kept in the URL;
    stops the page if none exist. Choosing another checkpoint of the main `ckpt` drops the old one's view
    (window, pass, layer, head, and a depth it lacks) from the URL, so the new one opens on its own defaults, and the
    widgets take those from the URL (url_wins)."""
    from app.state import choose_checkpoint

    names = checkpoint_names() if names is None else names
    params = url()
    chosen, messages = choose_checkpoint(
        params, names, key, default, checkpoints_place(), unusable, None if names else root_problem()
    )
    for m in messages:
        st.warning(m)
    if chosen is None:
        stop()
    name = where.selectbox(label, names, key=f"select_{key}", **initial(f"select_{key}", chosen, names))
    # shown because the URL named none that can be shown (load_shape says so), not because anyone chose it
    st.session_state[f"defaulted_{key}"] = name == chosen != params.get(key)
    if name != chosen:  # the user chose another: what no longer fits is clamped without a warning (warn)
        st.session_state["new_checkpoint"] = True
    if name != chosen and key == "ckpt":
        for k in VIEW_KEYS:
            params.pop(k, None)
        try:  # the depth carries over where the new checkpoint has it (the same task's models, compared)
            if params.get("depth") not in {str(d) for d in shape(name).depths}:
                params.pop("depth", None)
        except ValueError:  # a broken checkpoint: page_view says what is wrong with it
            pass
    params[key] = name
    return name


def _example(name: str, depth: int, seed: int, custom: str | None):
    ld = loaded(name)
    return (
        session.custom_example(ld.task, custom) if custom is not None else session.seeded_example(ld.task, depth, seed)
    )


@st.cache_data(max_entries=32, show_spinner="Integrating gradients through sleep…")
def attributions(name: str, depth: int, seed: int, custom: str | None, n: int, position: int):
    return session.attributions(loaded(name), _example(name, depth, seed, custom), n, [position])


@st.cache_data(max_entries=128, show_spinner=False)
def sweep_point(name: str, passes: int, examples: int) -> dict:
    return session.sweep_point(loaded(name), passes, examples)


@st.cache_data(max_entries=16, show_spinner=False)
def shipped_sweep(name: str):
    """(the sweep shipped beside the checkpoint or None, a message if its file is unusable or None)."""
    try:
        return session.shipped_sweep(name), None
    except ValueError as e:
        return None, runnable(str(e))


@st.cache_data(max_entries=16, show_spinner=False)
def shipped_probes(name: str):
    """(the probes table shipped beside the checkpoint or None, a message if its file is unusable or None)."""
    try:
        return session.shipped_probes(name), None
    except ValueError as e:
        return None, runnable(str(e))


@st.cache_data(max_entries=8, show_spinner="Fitting linear probes on the fast weights (about a minute)…")
def probes(name: str, examples: int, seed: int):
    return session.probes(name, examples=examples, seeds=(seed,))


@st.cache_data(max_entries=16, show_spinner="Fitting a probe and reading the example's fast weights…")
def query_fact(name: str, depth: int, seed: int, custom: str | None, layer: int, pass_: int, fact_depth: int):
    return session.query_fact(loaded(name), _example(name, depth, seed, custom), layer, pass_, fact_depth)


def page_view(cmp: str | None = None, uses=EXAMPLE_KEYS + SHOWN_KEYS):
    """The common page header: the checkpoint (from the URL or the sidebar), what it allows, and the URL's view,
    its messages about the parameters the page `uses` (has controls for; or uses(name), for controls that depend on
    the checkpoint) shown as warnings. Stops the page with an error if the checkpoint cannot be loaded."""
    from app.state import parse_view

    name = pick_checkpoint(default=FEATURED)
    sh = load_shape(name, default="the featured checkpoint" if name == FEATURED else "the first by name")
    view = parse_view(url(), name, sh, cmp=cmp).only(uses(name) if callable(uses) else uses)
    warn(view)
    return name, sh, view


def tell(messages: list[str]) -> None:
    """The URL's problems as warnings, unless the URL was carried from the last page (main.py) or the user just
    chose another checkpoint: what the user never typed is clamped without a word."""
    if not (st.session_state.get("params_carried") or st.session_state.get("new_checkpoint")):
        for message in messages:
            st.warning(message)


def warn(view) -> None:
    """The URL's problems with a view (tell). Then every value the URL holds is written as the page shows it, so a
    wrong one is told once, not on every run of every page (a page writes back only the values it has controls
    for)."""
    tell(view.messages)
    if view.messages:  # the values told of, as the page shows them (a page leaves the others to the pages using them)
        params, shown = url(), view.params()
        params.update({k: shown[k] for k in params.keys() & view.problems.keys()})


@st.cache_resource
def _seen() -> dict:
    """What refresh_if_changed saw last: one for the server, as the caches are."""
    return {}


def refresh_if_changed() -> None:
    """Clear every cache when a file under the checkpoints folder changed (a checkpoint trained again, resumed,
    shipped, added or removed; a sweep or probe table rewritten): the caches are keyed by name, not by content.
    One stat per file, so it runs on every script run."""
    root = session.checkpoint_root()
    stamp = []
    for f in _files_below(root):
        try:
            st_ = f.stat()
        except OSError:  # removed while we looked: the next run sees it gone
            continue
        stamp.append((str(f), st_.st_mtime_ns, st_.st_size))
    seen = _seen()
    if seen and (seen["root"], seen["stamp"]) != (str(root), stamp):
        st.cache_data.clear()
        loaded.clear()
    seen.update(root=str(root), stamp=stamp)


def _files_below(root) -> list:
    """The files of root and of its folders, one level down, without dotfiles (the temporary files a write makes
    and removes); a folder that cannot be listed, or went away, gives none."""
    out = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            out += sorted(f for f in entry.iterdir() if not f.name.startswith(".")) if entry.is_dir() else [entry]
        except OSError:
            continue
    return out
