"""What the app asks of the model, in one place: checkpoints by name, examples (seeded or typed), traces.

The app caches these calls; it never runs a model any other way. Checkpoints are chosen by name from a root
folder (default: the repository's checkpoints/, or $SLEEPCORE_CHECKPOINTS), never by a path from the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sleepcore.checkpoint import available, checked_info, checkpoint_root, load_checkpoint, read_info, weights_sha256
from sleepcore.tasks import Example, Task, get_task
from sleepcore.trace import Trace, record_trace


def checkpoint_names() -> list[str]:
    return available(checkpoint_root())


def _folder(name: str) -> Path:
    names = checkpoint_names()
    if name not in names:
        raise ValueError(f"unknown checkpoint {name!r}; known: {', '.join(names) or 'none'}")
    return checkpoint_root() / name


def checkpoint_info(name: str) -> dict:
    """The config.json of checkpoint `name`, checked and with every setting written out (checkpoint.checked_info)."""
    return checked_info(read_info(_folder(name)))


def result_row(name: str, info: dict) -> dict | None:
    """A checkpoint's stored evaluation as one `analysis.figures.results_table` input row (None if it has none)."""
    from sleepcore.results import is_counts

    ev = info.get("eval")
    if not ev:
        return None
    if not isinstance(ev, dict) or not all(is_counts(ev.get(k, {})) for k in ("answers", "exact")):
        raise ValueError(
            "its config.json's stored evaluation ('eval') is not {answers, exact: {depth: {acc, lo, hi, n}}}"
        )
    passes = info["sleep"]["passes"]
    return {
        "checkpoint": name,
        "variant": info.get("variant", "hybrid"),
        "task": info["task"]["name"],
        "preset": info.get("preset") or info["task"]["name"],
        "passes": passes,
        "trained_passes": passes,
        "answers": ev["answers"],
        "exact": ev.get("exact", {}),
        "train_seed": info.get("train", {}).get("seed", 0),
    }


def result_rows(names: list[str]) -> tuple[list[dict], list[str]]:
    """`analysis.figures.results_table` input rows for these checkpoints, and a message for each thing not used.

    A checkpoint's row comes from the root's RESULTS.json (`sleepcore eval --all --results-json`: every count, on
    its examples per depth) where that file holds an evaluation of the checkpoint's current weights (same SHA-256);
    otherwise from the evaluation stored in its config.json at the end of training (per answer and exact only).
    Each row says which in `source`.
    """
    from sleepcore.results import read_results_json

    shipped, notes = {}, []
    path = checkpoint_root() / "RESULTS.json"
    if path.is_file():
        try:
            doc = read_results_json(path)
        except ValueError as e:
            notes.append(f"{e}; showing each checkpoint's own stored evaluation instead")
        else:
            label = f"RESULTS.json ({doc['per_depth']:,} per depth, seed {doc['seed']})"
            for r in doc["results"]:
                if r["passes"] == r.get("trained_passes", r["passes"]):
                    shipped[r["checkpoint"]] = {**r, "source": label}
    rows = []
    for name in names:
        try:
            info = checkpoint_info(name)
        except ValueError as e:
            notes.append(f"Checkpoint skipped: {name}: {e}")
            continue
        r = shipped.get(name)
        try:
            stale = r is not None and r["weights_sha256"] != weights_sha256(_folder(name))
            if r is None or stale:  # weights that do not load are the checkpoint's problem: said as such
                load_checkpoint(_folder(name))
            if stale:
                notes.append(
                    f"{name}: {path} evaluated other weights than its model.safetensors; using its config.json"
                )
                r = None
            if r is None and (r := result_row(name, info)) is not None:
                r["source"] = "config.json (end of training)"
        except ValueError as e:
            notes.append(f"Checkpoint skipped: {name}: {e}")
            continue
        if r is not None:
            rows.append(r)
    return rows, notes


def one_per_seed(rows: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """`result_rows` with at most one sleep model (hybrid) per preset, N and training seed, the rows that
    `analysis.figures.accuracy_vs_passes` draws as one line per seed; and a message for each model left out (two
    runs of one preset, N and seed: a model trained into the checkpoints folder beside a shipped one, or a copy),
    as (preset, message). The one kept is RESULTS.json's, else the first by name."""
    kept: dict[tuple, str] = {}
    out, notes = [], []
    for r in sorted(rows, key=lambda r: (not r.get("source", "").startswith("RESULTS.json"), r["checkpoint"])):
        if r.get("variant", "hybrid") == "hybrid":
            key = (r.get("preset") or r.get("task"), r["passes"], r.get("train_seed", 0))
            if key in kept:
                notes.append(
                    (
                        key[0],
                        f"{r['checkpoint']} is not drawn: it has the preset ({key[0]}), N = {key[1]} and training seed "
                        f"{key[2]} of {kept[key]}, and a chart draws one model per N and seed. Its model card has its "
                        "numbers.",
                    )
                )
                continue
            kept[key] = r["checkpoint"]
        out.append(r)
    return out, notes


def preset_rows(name: str) -> list[dict]:
    """`result_rows` of every checkpoint trained under the same preset as `name` (one task, one set of depths)."""
    info = checkpoint_info(name)
    preset = info.get("preset") or info["task"]["name"]
    rows, _ = result_rows(checkpoint_names())
    return [r for r in rows if r["preset"] == preset]


CHARTED = ("accuracy per answer", "exact (whole sequence right)")  # the overview draws these from config.json


def results_sections(preset: str) -> list[tuple[str, str]]:
    """The other tables RESULTS.md holds for a preset, as (title, Markdown body): where the per-answer depth can
    overstate (gsm: the question alone; Depo: k mod n, the first query alone). Empty without a RESULTS.md."""
    path = checkpoint_root() / "RESULTS.md"
    if not path.is_file():
        return []
    out = []
    for block in path.read_text(encoding="utf-8", errors="replace").split("\n## ")[1:]:
        heading, _, body = block.partition("\n")
        label, _, title = heading.partition(": ")
        if label.split(" (")[0] == preset and title and title not in CHARTED:
            out.append((title, body.strip()))
    return out


def model_card(name: str) -> str:
    """The checkpoint's model card (README.md, Markdown), or a line saying why there is none to show."""
    card = _folder(name) / "README.md"
    if not card.is_file():
        return f"*{name} has no model card (README.md).*"
    try:
        return card.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        why = "it is not UTF-8 text" if isinstance(e, UnicodeDecodeError) else e.strerror or str(e)
        return f"*{name}'s model card ({card}) cannot be read: {why}; rewrite it: `sleepcore ship --refresh-cards`.*"


@dataclass
class Loaded:
    name: str
    model: object
    info: dict
    task: Task
    sha256: str


def load(name: str) -> Loaded:
    folder = _folder(name)
    model, info = load_checkpoint(folder)
    task = get_task(info["task"]["name"], **info["task"]["params"])
    return Loaded(name, model, info, task, weights_sha256(folder))


def sweep_point(loaded: Loaded, passes: int, per_depth: int, seed: int = 777) -> dict:
    """The loaded checkpoint evaluated with `passes` sleep passes at test time (`sleepcore sweep`'s row for N)."""
    from sleepcore.results import sweep_model

    return sweep_model(loaded.model, loaded.info, [passes], per_depth, seed, loaded.name, loaded.sha256)[0]


def seeded_example(task: Task, depth: int, seed: int) -> Example:
    """A held-out example at this depth; the same (depth, seed) always gives the same example."""
    if depth not in task.depths:
        raise ValueError(f"depth {depth} is not one of this task's depths {list(task.depths)}")
    return task.sample(1, seed=seed, split="test", depth=depth)[0]


def custom_example(task: Task, text: str) -> Example:
    """An example typed as the task's readable text. ValueError says what is wrong and what is valid."""
    if not text.strip():
        raise ValueError(f"the example is empty; write {task.seq_len} tokens separated by spaces")
    return task.parse(text)


def trace_example(loaded: Loaded, example: Example, passes: int | None = None) -> Trace:
    """Record one example: every window, pass and layer, plus the anytime readout for n = 1..N.

    passes: the test-time N (default: the trained N); ValueError unless an integer from 1 to MAX_PASSES, as the
    CLI's `--passes` (`sleepcore.results._check_passes`).
    """
    if passes is not None:
        from sleepcore.results import _check_passes

        _check_passes([passes])
    return record_trace(
        loaded.model,
        loaded.info,
        [example],
        checkpoint=loaded.name,
        seed=0,
        passes=passes,
        checkpoint_sha256=loaded.sha256,
    )


def attributions(loaded: Loaded, example: Example, n: int, positions: list[int] | None = None):
    """Integrated gradients of the answers w.r.t. the evicted tokens, with sleep truncated at n passes."""
    from analysis.attribution import attribute

    return attribute(loaded.model, [example], loaded.task, passes=[n], positions=positions)


def probes(name: str, examples: int = 256, seeds: tuple[int, ...] = (0,)):
    """The probes table for a checkpoint: shipped beside it as probes.parquet, or computed now (also where the
    shipped file is damaged: `shipped_probes` says what is wrong with it)."""
    from analysis.probes import probe_checkpoint

    try:
        shipped = shipped_probes(name)
    except ValueError:
        shipped = None
    if shipped is not None:
        return shipped
    return probe_checkpoint(_folder(name), examples=examples, seeds=seeds, progress=False)


def shipped_probes(name: str):
    """The probes table shipped beside a checkpoint (probes.parquet), or None. ValueError, with the command that
    rewrites it, for a file that is not a readable probes table (`analysis.probes.read_probes`)."""
    from analysis.probes import read_probes

    return read_probes(_folder(name))


def shipped_sweep(name: str):
    """The test-time sweep shipped beside a checkpoint (sweep.parquet, a `results_table`), or None.
    ValueError for a file that is not a sweep of this checkpoint's weights (`sleepcore.results.read_sweep`)."""
    from sleepcore.results import read_sweep

    return read_sweep(_folder(name))


def sleep_curve(probes):
    """The trained model's probe rows at every pass: its "pass1" rows and its "trained" rows (passes 2..N)."""
    import polars as pl

    return probes.filter(pl.col("baseline").is_in(["pass1", "trained"])).with_columns(baseline=pl.lit("trained"))


class NoSuchFact(ValueError):
    """query_fact: the example (or task) has no fact of the depth asked; a question to ask of another example."""


def query_fact(
    loaded: Loaded, example: Example, layer: int, pass_: int, fact_depth: int, examples: int = 256, window: int = -1
):
    """Ask the fast weights one fact type of `example`: fit a probe for (layer, pass, fact_depth) on held-out
    examples, then read every item of that fact off the example's own state.

    Returns a polars frame: item (what is asked), truth, probe (its answer), right.
    """
    import polars as pl

    from analysis.probes import (
        DATA_SEED,
        context_window,
        features,
        predict_probe,
        principal_coordinates,
        record_states,
        task_facts,
        token_queries,
    )

    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 2:
        raise ValueError(
            f"examples (held-out examples the probe is fitted on) must be an integer >= 2; got {examples!r}"
        )
    task, model = loaded.task, loaded.model
    if isinstance(fact_depth, bool) or not isinstance(fact_depth, int) or not 0 <= fact_depth <= task.max_depth:
        raise ValueError(
            f"fact_depth must be an integer from 0 to {task.max_depth} (the deepest facts of the task, {task.name}); "
            f"got {fact_depth!r}"
        )
    w = context_window(task, window)
    pool = task.sample(examples, seed=DATA_SEED, split="test")
    facts = [f for f in task_facts(task, pool + [example], fact_depth) if f.depth == fact_depth]
    if not facts:
        raise NoSuchFact(f"no fact of depth {fact_depth} for this example and task")
    f = facts[0]
    mine = f.example == len(pool)  # the example's own rows; the probe trains on every other row
    if not mine.any():
        raise NoSuchFact(f"this example defines no fact of depth {fact_depth}")
    states = record_states(model, pool + [example], w)
    if (layer, pass_) not in states:
        raise ValueError(f"layer {layer} pass {pass_} is not recorded; recorded: {sorted(states)}")
    queries = None if f.token is None else token_queries(model, layer)
    X = features(states[(layer, pass_)], f, queries)
    Z, variance = principal_coordinates(X, ~mine)
    guess, truth = predict_probe(Z, variance, f.label, ~mine), f.label[mine]
    if truth.ndim == 2:  # rule110: one row of cells
        items = [f"cell {i}" for i in range(truth.shape[1])]
        truth_s, guess_s = [str(int(v)) for v in truth[0]], [str(int(v)) for v in guess[0]]
    else:
        items = task.vocab.decode(f.token[mine].tolist())
        decode = (lambda v: task.vocab.tokens[v]) if f.fact == "successor" else str
        truth_s, guess_s = [decode(int(v)) for v in truth], [decode(int(v)) for v in guess]
    return pl.DataFrame(
        {"item": items, "truth": truth_s, "probe": guess_s, "right": [a == b for a, b in zip(truth_s, guess_s)]}
    )
