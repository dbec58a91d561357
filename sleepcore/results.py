"""Evaluate shipped checkpoints and write the results: tables (checkpoints/RESULTS.md) and every count as JSON
(checkpoints/RESULTS.json, which the app and the figure set chart)."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

from sleepcore.checkpoint import (
    CHECKPOINT_ROOT,
    CheckpointError,
    atomic_write,
    checkpoint_root,
    configs_from,
    json_problem,
    load_checkpoint,
    read_info,
    require_checkpoints,
    resolve,
    weights_sha256,
)
from sleepcore.config import check_seed
from sleepcore.evaluate import evaluate, sample_eval
from sleepcore.tasks import TASKS, changed_task
from sleepcore.tasks.base import Task


def evaluate_checkpoint(
    name,
    passes: int | None = None,
    per_depth: int = 250,
    seed: int = 777,
    progress: bool = False,
    label=None,
    task_changes: dict | None = None,
) -> dict:
    """Evaluate a checkpoint (folder or shipped name) on per_depth held-out examples per depth; every count, with
    what identifies the model (its weights' SHA-256, seeds, N). label: the name to record (default: `name`).
    task_changes: settings of its task to change ({"max_depth": 6, ...}; `task_for`), to test it off the
    distribution it was trained on; the result records them as `task_changed`."""
    return sweep_checkpoint(name, [passes], per_depth, seed, progress, label, task_changes)[0]


def sweep_checkpoint(
    name,
    passes: list[int | None],
    per_depth: int = 250,
    seed: int = 777,
    progress: bool = False,
    label=None,
    task_changes: dict | None = None,
) -> list[dict]:
    """`evaluate_checkpoint` at each test-time N in `passes` (None: the trained N), on the same held-out examples:
    what the same weights answer with less sleep, or more."""
    _check_passes(passes)
    _check_per_depth(per_depth)
    check_seed(seed)
    model, info = load_checkpoint(name)
    return sweep_model(
        model, info, passes, per_depth, seed, str(label or name), weights_sha256(resolve(name)), progress, task_changes
    )


def task_for(info: dict, changes: dict | None = None):
    """The task a checkpoint (config.json `info`) was trained on, with `changes` to its settings: the same weights
    tested off their training distribution (gsm: deeper chains, `max_depth` with `depths`; other constants,
    `max_constant`), and what really changed ({setting: [trained, here]}; `tasks.changed_task`). ValueError for an
    unknown setting or a bad value (naming the valid ones), for a change its weights cannot read (other tokens,
    another window), and for sequences longer than a model that never evicts reads."""
    model_cfg, sleep_cfg, task_cfg = configs_from(info)[:3]  # checked: a damaged config.json is told, not a KeyError
    task, changed = changed_task(task_cfg.name, task_cfg.params, changes)
    positions = model_cfg.max_positions
    if sleep_cfg.window is None and task.seq_len > positions:  # full attention reads the whole sequence
        raise ValueError(
            f"the changed task makes sequences of {task.seq_len} tokens; this model reads at most {positions}"
        )
    return task, changed


MAX_PASSES = 64  # a cap on test-time N: the shipped sweeps go to 2N = 8, and each pass costs a whole sleep


def _check_passes(passes) -> None:
    bad = [p for p in passes if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 1)]
    if bad or not passes:
        raise ValueError(f"passes must be integers >= 1 (test-time N); got {list(passes)}")
    if too_many := [p for p in passes if p is not None and p > MAX_PASSES]:
        raise ValueError(f"passes must be at most {MAX_PASSES} (test-time N); got {too_many}")


# A cap on examples per depth: the documented evaluation uses 1,000, and every example is sampled before the first
# runs, so a mistyped count would fill memory with no output rather than run.
MAX_PER_DEPTH = 20_000


def _check_per_depth(per_depth) -> None:
    if isinstance(per_depth, bool) or not isinstance(per_depth, int) or per_depth < 1:
        raise ValueError(f"examples per depth (--examples) must be an integer >= 1; got {per_depth!r}")
    if per_depth > MAX_PER_DEPTH:
        raise ValueError(
            f"examples per depth (--examples) must be at most {MAX_PER_DEPTH:,} (the shipped results use 1,000); "
            f"got {per_depth:,}"
        )


def sweep_model(
    model,
    info: dict,
    passes: list[int | None],
    per_depth: int,
    seed: int,
    label: str,
    sha256: str,
    progress=False,
    task_changes: dict | None = None,
) -> list[dict]:
    """`sweep_checkpoint` for a model already loaded (with its config.json `info` and its weights' SHA-256)."""
    from tqdm import tqdm

    _check_passes(passes)
    _check_per_depth(per_depth)
    task, changed = task_for(info, task_changes)
    examples = sample_eval(task, per_depth, seed)
    about = {
        "checkpoint": label,
        "weights_sha256": sha256,
        "trained_passes": info["sleep"]["passes"],
        "variant": info.get("variant", "hybrid"),
        "train_seed": info["train"]["seed"],
        "data_seed": info["train"]["data_seed"],
        "task": info["task"]["name"],
        "preset": info.get("preset") or info["task"]["name"],
        "per_depth": per_depth,
        "seed": seed,
    }
    out = []
    with tqdm(total=len(examples) * len(passes), disable=not progress, desc=f"eval {label}", leave=False) as bar:
        for n in passes:
            res = evaluate(model, task, examples, passes=n, progress=bar.update)
            out.append(
                {
                    **about,
                    "passes": n or info["sleep"]["passes"],
                    "chance": {str(d): task.chance(d) for d in sorted(set(task.depths) | set(res.answers))},
                    **res.as_dict(),
                    **(
                        {"effective_name": task.effective_depth_name, "effective_about": task.effective_depth_about}
                        if task.effective_depth_name
                        else {}
                    ),
                    **({"first_about": task.first_answer_about} if task.first_answer_about else {}),
                    **({"task_changed": changed} if changed else {}),
                }
            )
    return out


RESULTS_FORMAT = 1


def evaluate_all(per_depth: int = 1000, seed: int = 777, root: Path | None = None, progress: bool = True) -> list:
    """`evaluate_checkpoint` for every checkpoint under root (default: `checkpoint_root()`, the folder the app and the
    figure set read), at its trained N."""
    _check_per_depth(per_depth)  # before the first checkpoint's evaluation, and with none under root
    root = checkpoint_root() if root is None else root
    names = require_checkpoints(root)  # none: an empty list would be written over RESULTS.md as if it were a result
    return [
        evaluate_checkpoint(Path(root) / name, per_depth=per_depth, seed=seed, progress=progress, label=name)
        for name in names
    ]


def command(per_depth: int, seed: int, markdown: str | None = None, results_json: str | None = None) -> str:
    """The `sleepcore eval --all` command that writes these results, as it was given: its files, and the
    $SLEEPCORE_CHECKPOINTS it read where that is not the repository's checkpoints/."""
    root = checkpoint_root()
    env = "" if root == CHECKPOINT_ROOT else f"SLEEPCORE_CHECKPOINTS={shlex.quote(str(root))} "
    out = "".join(
        f" {flag} {shlex.quote(str(f))}"
        for flag, f in (("--markdown", markdown), ("--results-json", results_json))
        if f
    )
    return f"{env}sleepcore eval --all --examples {per_depth} --seed {seed}{out}"


def results_command(per_depth: int = 1000, seed: int = 777) -> str:
    """The command that writes RESULTS.md and RESULTS.json beside the checkpoints names come from (checkpoint_root():
    the files the app and the figure set read), from the repository's root."""
    root = checkpoint_root()
    where = "checkpoints" if root == CHECKPOINT_ROOT else str(root)
    return command(per_depth, seed, f"{where}/RESULTS.md", f"{where}/RESULTS.json")


# the command that writes the shipped tables (checkpoints/RESULTS.md, .json), run from the repository's root
SHIPPED_COMMAND = (
    "sleepcore eval --all --examples 1000 --seed 777 --markdown checkpoints/RESULTS.md --results-json "
    "checkpoints/RESULTS.json"
)


def write_results_json(
    path: str | Path, results: list[dict], per_depth: int, seed: int, command_text: str | None = None
) -> None:
    """Every result (every count: per answer, exact, by effective depth, first answer) as one JSON document, with the
    command that wrote it (default: `command(per_depth, seed)`)."""
    cmd = command(per_depth, seed) if command_text is None else command_text
    doc = {"format": RESULTS_FORMAT, "command": cmd, "per_depth": per_depth, "seed": seed}
    text = json.dumps({**doc, "results": results}, indent=1) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


METRIC_NAMES = ("answers", "exact", "effective", "first")  # the counts an evaluation holds
REQUIRED = {"checkpoint": str, "weights_sha256": str, "passes": int, "preset": str, "task": str, "answers": dict}


def read_results_json(path: str | Path) -> dict:
    """A RESULTS.json written by `write_results_json`, checked; ValueError saying what is wrong otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} cannot be read as JSON: {json_problem(e)}") from None
    except OSError as e:
        raise ValueError(f"{path} cannot be read: {e.strerror or e}") from None
    well_formed = (
        isinstance(doc, dict)
        and doc.get("format") == RESULTS_FORMAT
        and isinstance(doc.get("results"), list)
        and all(isinstance(doc.get(k), int) for k in ("per_depth", "seed"))
    )
    if not well_formed:
        raise ValueError(
            f"{path} is not a sleepcore results file (a JSON object with format {RESULTS_FORMAT}, integer per_depth "
            f"and seed, and a 'results' list); write one with `{SHIPPED_COMMAND}`"
        )
    for i, r in enumerate(doc["results"]):
        bad = [k for k, t in REQUIRED.items() if not isinstance(r, dict) or not isinstance(r.get(k), t)]
        if bad:
            raise ValueError(f"{path}: result {i} lacks or mistypes {', '.join(bad)} (needed: {', '.join(REQUIRED)})")
        if r.get("task_changed"):  # `eval --all` evaluates each checkpoint on its own task, and the tables say so
            raise ValueError(
                f"{path}: {r['checkpoint']}'s result was evaluated on a changed task ({r['task_changed']}), not the "
                f"one it was trained on; write the file again with `{SHIPPED_COMMAND}`"
            )
        for metric in METRIC_NAMES:
            if not is_counts(r.get(metric, {})):
                raise ValueError(f"{path}: {r['checkpoint']}'s {metric!r} is not {{depth: {{acc, lo, hi, n}}}}")
        odd = [k for k, ok in _OPTIONAL.items() if k in r and not ok(r[k])]
        if r["passes"] < 1 or odd:
            what = ", ".join(odd) if odd else f"passes {r['passes']}"
            raise ValueError(
                f"{path}: {r['checkpoint']}'s result has a bad {what}; write the file again with `{SHIPPED_COMMAND}`"
            )
    return doc


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_depth(k) -> bool:
    return isinstance(k, str) and k.isdecimal() and len(k) < 6


_OPTIONAL = {  # what a result may hold besides REQUIRED, and what it must be
    "trained_passes": lambda v: _is_int(v) and v >= 1,
    "train_seed": _is_int,
    "chance": lambda v: isinstance(v, dict) and all(_is_depth(k) and _is_number(c) for k, c in v.items()),
}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_counts(cells) -> bool:
    """Whether `cells` is an evaluation's counts: {depth (a whole number, as text): {acc, lo, hi in [0, 1], n >= 0}}."""
    return isinstance(cells, dict) and all(_is_depth(k) and _is_cell(c) for k, c in cells.items())


def _is_cell(c) -> bool:
    """{acc, lo, hi in [0, 1], n >= 0}; acc is NaN where n is 0 (evaluate.Cell: nothing counted)."""
    if not (isinstance(c, dict) and _is_int(c.get("n")) and c["n"] >= 0):
        return False
    empty = c["n"] == 0 and _is_number(c.get("acc")) and math.isnan(c["acc"])
    return all(_is_number(c.get(k)) and (0 <= c[k] <= 1 or (k == "acc" and empty)) for k in ("acc", "lo", "hi"))


def results_markdown(
    per_depth: int = 1000, seed: int = 777, results: list[dict] | None = None, command_text: str | None = None
) -> str:
    """The results tables of every shipped checkpoint, one section per preset (its task and depths). results:
    `evaluate_all(per_depth, seed)`'s, evaluated here when not given; command_text: the command that wrote them
    (default: `command(per_depth, seed)`)."""
    rows: dict[str, list[dict]] = {}
    for res in evaluate_all(per_depth, seed) if results is None else results:
        rows.setdefault(res["preset"], []).append(dict(res))
    out = [
        "# Results",
        "",
        f"Written by `{command(per_depth, seed) if command_text is None else command_text}`",
        "(RESULTS.json holds every number below, and more digits, for the app and the figures).",
        f"Every cell: accuracy on held-out (test split) examples, {per_depth} sequences per depth, with its 95% Wilson",
        "interval. Models of one task that differ in N were trained on the same data in the same order for the same",
        "number of optimizer steps.",
    ]
    variants = {r["variant"] for results in rows.values() for r in results}
    if variants & {"attn-only", "full-attention"}:
        out += [
            "The attention-only model under eviction must sit at chance (the eviction is real) and the",
            "full-attention model, which never evicts, is an upper reference: sanity checks, not competitors.",
        ]
    if "wide" in variants:
        out += [
            "The wide model (N = 1 with a 4× wider MLP) is the capacity control: it tells what more sleep passes buy",
            "from what more parameters buy.",
        ]
    if "wake-loop" in variants:
        out += [
            "The wake-loop model is the recurrence control: the same N passes per window, spent on the windows it",
            "answers from (each from the state that window began with) instead of sleeping on the context, which it",
            "writes once. It tells what sleep buys from what looping at prediction time buys, at N times the wake",
            "latency (`sleepcore bench latency`).",
        ]
    replicas = [r for results in rows.values() for r in results if r.get("train_seed", 0) != 0]
    if replicas:
        out += [
            "Replicas trained again with another initialisation and data seed (the models of one task that differ",
            "in N share those seeds too): "
            + ", ".join(f"{r['checkpoint']} (seed {r['train_seed']}, data seed {r['data_seed']})" for r in replicas)
            + ".",
        ]
    missing = sorted({"attn-only", "full-attention", "wide"} - variants)
    if missing:
        out += ["", f"Not shipped yet: the {', '.join(missing)} baseline(s) (`sleepcore train --variant ...`)."]
    out += _glance(rows)
    for preset, results in rows.items():
        task = f"{preset} ({results[0]['task']})" if preset != results[0]["task"] else preset
        results.sort(key=lambda r: (r["variant"] != "hybrid", r["variant"], r["passes"]))
        depths = list(results[0]["answers"])
        for metric, label in (("answers", "accuracy per answer"), ("exact", "exact (whole sequence right)")):
            if not any(r[metric] for r in results):
                continue
            out += _section(f"## {task}: {label}", [], results, metric, depths, [f"depth {d}" for d in depths])
            if metric == "answers":
                out.append("| chance | | | " + " | ".join(f"{results[0]['chance'][d]:.2f}" for d in depths) + " |")
        if any(r.get("effective") for r in results):  # tasks whose depth can overstate (Depo where k wraps; gsm)
            out += _effective_table(task, results)
        if results[0].get("first_about"):  # tasks whose later answers can lean on earlier ones (Depo)
            out += _first_table(task, results, depths)
    return "\n".join(out) + "\n"


def glance(results: list[dict]) -> tuple[list[str], list[dict]]:
    """Every preset and training seed at its deepest depth, by the count its task is judged on (headline_metric), a
    column per model (N = 1, 2, 4 and the controls): the column headings, and one row per preset and seed
    ({"preset", "count, depth", "seed", heading: accuracy, or None where no such model, or no such count of it, is
    held}). Where two results fill one cell, the one from RESULTS.json (`source`, as analysis.session gives it) or
    else the first by checkpoint name is kept; a preset with no count of its judged kind is left out."""

    named = {  # each variant's heading, in the columns' order
        "hybrid": "N",
        "wide": "wide N",
        "wake-loop": "wake loop N",
        "attn-only": "attention only N",
        "full-attention": "full attention N",
    }

    def column(r: dict) -> tuple[tuple, str]:  # (sort key, heading)
        variant, n = r["variant"], r["passes"]
        order = list(named).index(variant) if variant in named else len(named)
        return (order, n), f"{named.get(variant, variant + ' N')} = {n}"

    ordered = sorted(
        results, key=lambda r: (not str(r.get("source", "RESULTS.json")).startswith("RESULTS.json"), r["checkpoint"])
    )
    columns = dict(sorted({column(r) for r in ordered}))
    presets: dict[str, list[dict]] = {}
    for r in ordered:
        presets.setdefault(r["preset"], []).append(r)
    labels = {"answers": "per answer", "exact": "exact"}
    rows = []
    for preset, runs in sorted(presets.items()):
        metric = headline_metric([m for r in runs for m in METRIC_NAMES if r.get(m)], runs[0]["task"])
        depths = {d for r in runs for d in r.get(metric) or {}}
        if not depths:
            continue
        depth = max(depths, key=int)
        label = next((r["effective_name"] for r in runs if r.get("effective_name")), "") or metric
        for seed in sorted({r.get("train_seed", 0) for r in runs}):
            cells: dict[tuple, dict | None] = {}
            for r in runs:
                if r.get("train_seed", 0) == seed:
                    cells.setdefault(column(r)[0], (r.get(metric) or {}).get(depth))
            accs = {heading: _acc(cells.get(k)) for k, heading in columns.items()}
            rows.append(
                {"preset": preset, "count, depth": f"{labels.get(metric, label)}, {depth}", "seed": seed} | accs
            )
    return list(columns.values()), rows


def _acc(cell: dict | None) -> float | None:
    """A cell's accuracy; None for no cell, or one of no answers (n = 0, accuracy NaN)."""
    return cell["acc"] if cell and cell.get("n", 1) and not math.isnan(cell["acc"]) else None


def _glance(rows: dict[str, list[dict]]) -> list[str]:
    """RESULTS.md's table of `glance`."""
    columns, table = glance([r for results in rows.values() for r in results])
    if not table:
        return []
    out = [
        "",
        "## At a glance: every preset at its deepest depth",
        "",
        "Accuracy by the count each task is judged on (`Task.judged_on`: the depth an answer really needs where a task",
        "has one; for Rule 110, every answer of a sequence right: whole rows), one row per training seed; each cell's",
        "interval is in the sections below.",
        "",
        "| preset | count, depth | seed | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for row in table:
        cells = ["" if row[c] is None else f"{row[c]:.3f}" for c in columns]
        out.append(f"| {row['preset']} | {row['count, depth']} | {row['seed']} | " + " | ".join(cells) + " |")
    return out


def _first_table(task: str, results: list[dict], depths: list[str]) -> list[str]:
    """Accuracy on the first answer of each sequence alone, by its depth."""
    intro = [f"Only {results[0]['first_about']}. One answer per sequence, so each cell has fewer answers than above."]
    heading = f"## {task}: the first answer of each sequence alone"
    return _section(heading, intro, results, "first", depths, [f"depth {d}" for d in depths])


def _effective_table(task: str, results: list[dict]) -> list[str]:
    """Accuracy per answer by the depth it really needs (Depo: k mod n; gsm: the question alone)."""
    name = next(r["effective_name"] for r in results if r.get("effective"))
    about = next(r.get("effective_about", name) for r in results if r.get("effective"))
    depths = sorted({int(d) for r in results for d in r.get("effective", {})})
    intro = [
        f"The same answers as above, by the depth they really need: {about}.",
        "A cell's number of answers varies; see each interval.",
    ]
    heading = f"## {task}: accuracy per answer by {name}"
    return _section(heading, intro, results, "effective", [str(d) for d in depths], [str(d) for d in depths])


def _section(heading: str, intro: list[str], results: list[dict], key: str, columns: list[str], labels) -> list[str]:
    """A results section: heading, optional intro lines, and one row per checkpoint of results[r][key][column]."""
    out = ["", heading, ""] + (intro + [""] if intro else [])
    out += ["| checkpoint | variant | N | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for r in results:
        cells = [cell_text(r.get(key, {}).get(c)) for c in columns]
        out.append(f"| {r['checkpoint']} | {r['variant']} | {r['passes']} | " + " | ".join(cells) + " |")
    return out


def headline_metric(metrics, task: str | None = None) -> str:
    """Of the counts an evaluation holds (`metrics`: names such as "answers", "effective"), the one its task (a name
    such as "rule110"; Task.judged_on) is judged on; for an unknown or no task, the depth an answer really needs
    where the evaluation has it, else per answer."""
    order = TASKS[task].judged_on if task in TASKS else Task.judged_on
    return next((m for m in order if m in metrics), "answers")


def cell_text(c: dict | None) -> str:
    """One result cell as text: accuracy and its 95% interval, to 3 decimals each ("—" for none): bounds rounded to
    2 showed 0.999 [1.00, 1.00], an estimate outside its own interval."""
    return "—" if not c else f"{c['acc']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]"


# --- a test-time sweep shipped beside a checkpoint ---------------------------------------------------------------
SWEEP_FILE = "sweep.parquet"
SWEEP_COLUMNS = {  # what a sweep table (`analysis.figures.results_table` of a sweep) must hold, and its types
    **dict.fromkeys(("checkpoint", "task", "metric", "metric_label", "weights_sha256"), "String"),
    **dict.fromkeys(("passes", "trained_passes", "depth", "n", "per_depth"), "Int32"),
    **dict.fromkeys(("acc", "lo", "hi", "chance"), "Float64"),
    "eval_seed": "Int64",
}


def sweep_command(name: str, sweep, trained: int, out: str | None = None) -> str:
    """The command that writes this checkpoint's shipped sweep (a `sleepcore sweep --out` table) again; `out`: where
    (default: the repository's checkpoints/NAME/sweep.parquet, from its root)."""
    passes = sorted(sweep["passes"].unique().to_list())
    flag = "" if passes == list(range(1, 2 * trained + 1)) else f" --passes {','.join(map(str, passes))}"
    per_depth, seed = sweep["per_depth"][0], sweep["eval_seed"][0]
    out = out or f"checkpoints/{name}/{SWEEP_FILE}"
    return f"sleepcore sweep {name}{flag} --examples {per_depth} --seed {seed} --out {out}"


def read_table(path: Path, schema: dict, what: str, redo: str):
    """The Parquet file at `path` cast to `schema` ({column: polars dtype}; extra columns kept). ValueError saying
    what is wrong with it (unreadable, missing columns or rows, column types), then `redo`: how to write it again."""
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except Exception as e:  # polars raises several kinds for a damaged file
        raise ValueError(f"{path} is not a readable Parquet table ({type(e).__name__}); {redo}") from None
    missing = [c for c in schema if c not in df.columns]
    if missing or not df.height:
        raise ValueError(f"{path} is not a {what} (missing columns {missing or 'none'}, {df.height} rows); {redo}")
    try:
        return df.cast(schema, strict=True)
    except pl.exceptions.PolarsError:
        types = {c: str(df[c].dtype) for c in schema}
        raise ValueError(f"{path} is not a {what} (column types {types}); {redo}") from None


def read_sweep(folder: str | Path):
    """The test-time sweep shipped beside a checkpoint as sweep.parquet (`sleepcore sweep NAME --out
    checkpoints/NAME/sweep.parquet`: the same weights at P = 1 .. 2N), or None where none ships.

    ValueError, with the command that rewrites it (at its real path), for a file that is not a readable sweep
    table, mixes several evaluations, or was computed on other weights than the checkpoint's model.safetensors;
    CheckpointError (a ValueError) naming the weights where it is they that are damaged, not the sweep.
    """
    import polars as pl

    folder = Path(folder)
    path, name = folder / SWEEP_FILE, folder.name
    if not path.is_file():
        return None
    redo = f"write it again with: {redo_command('sweep', folder, SWEEP_FILE)}"
    schema = {c: getattr(pl, t) for c, t in SWEEP_COLUMNS.items()}
    sweep = read_table(path, schema, "sweep table", redo)
    for column in ("weights_sha256", "per_depth", "eval_seed", "trained_passes"):
        if sweep[column].null_count() or sweep[column].n_unique() != 1:
            raise ValueError(f"{path} mixes evaluations ({column}: {sweep[column].unique().to_list()}); {redo}")
    if problem := _sweep_problem(sweep):
        raise ValueError(f"{path} is not a sweep table ({problem}); {redo}")
    if "task_changed" in sweep.columns and sweep["task_changed"].null_count() < sweep.height:
        changed = sweep["task_changed"].drop_nulls().unique().to_list()
        raise ValueError(
            f"{path} was computed on a changed task ({'; '.join(changed)}), not the one {name} was trained on; "
            f"keep such a sweep elsewhere; {redo}"
        )
    check_computed_on(folder, sweep["weights_sha256"][0], path, redo)
    trained = configs_from(read_info(folder))[1].passes
    if sweep["trained_passes"][0] != trained:
        raise ValueError(
            f"{path} says {name} was trained at N = {sweep['trained_passes'][0]}, its config.json at N = {trained}; "
            f"{redo}"
        )
    return sweep.with_columns(checkpoint=pl.lit(name))


def check_computed_on(folder: Path, sha256: str, path: Path, redo: str) -> None:
    """A table derived from a checkpoint's weights (`path`, beside them in `folder`, saying it was computed on weights
    of SHA-256 `sha256`) must have been computed on these weights. ValueError naming the table, with `redo` (how to
    write it again), where it was not; CheckpointError naming the weights where it is they that do not load."""
    if sha256 == weights_sha256(folder):
        return
    name = folder.name
    try:  # weights that do not load (cut short, damaged) are the checkpoint's problem, not the table's
        load_checkpoint(folder)
    except CheckpointError as e:
        raise CheckpointError(
            f"{e}; so {name}'s weights are damaged (not its {path.name}, which cannot be checked against them): "
            "copy or ship the checkpoint again"
        ) from None
    raise ValueError(f"{path} was computed on other weights than {name}'s model.safetensors; {redo}")


def _sweep_problem(sweep) -> str | None:
    """What is wrong with a sweep table's values (read_table checked its columns and types), or None."""
    import polars as pl

    empty = [c for c in SWEEP_COLUMNS if c != "chance" and sweep[c].null_count()]  # chance: none for exact
    if empty:
        return f"empty cells in {', '.join(empty)}"
    metrics = set(sweep["metric"].unique().to_list())
    if "answers" not in metrics or metrics - set(METRIC_NAMES):
        return f"metrics {sorted(metrics)}: it needs 'answers', and knows {', '.join(METRIC_NAMES)}"
    if sweep.select("metric", "passes", "depth").is_duplicated().any():
        return "a (metric, passes, depth) row twice"
    ranges = (
        ("passes", pl.col("passes") >= 1),
        ("trained_passes", pl.col("trained_passes") >= 1),
        ("depth", pl.col("depth") >= 0),
        ("n", pl.col("n") >= 0),
        ("acc", pl.col("acc").is_between(0, 1) | ((pl.col("n") == 0) & pl.col("acc").is_nan())),  # NaN: none counted
        *((c, pl.col(c).is_between(0, 1)) for c in ("lo", "hi")),
    )
    bad = [c for c, ok in ranges if not sweep.select(ok.all()).item()]
    return f"values out of range in {', '.join(bad)}" if bad else None


def redo_command(command: str, folder: Path, file: str) -> str:
    """`sleepcore COMMAND CHECKPOINT --out FOLDER/FILE`, the command that writes a table shipped beside a checkpoint
    again, with the real paths: the checkpoint by name where that name resolves to this folder, else by its path;
    the output path as it is from the current folder."""
    try:
        by_name = resolve(folder.name).resolve() == folder.resolve()
    except CheckpointError:
        by_name = False
    checkpoint = folder.name if by_name else _shown(folder)
    return f"sleepcore {command} {shlex.quote(checkpoint)} --out {shlex.quote(_shown(folder / file))}"


def _shown(path: Path) -> str:
    """`path` relative to the current folder where it lies below it, else absolute."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
