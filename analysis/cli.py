"""The analysis subcommands of `sleepcore`, added through the `sleepcore.commands` entry-point group (pyproject.toml),
so sleepcore itself never imports analysis."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from sleepcore.cli import (
    add_task_changes,
    check_out,
    check_test_passes,
    check_threads,
    never_evicts,
    seed,
    task_changes_of,
)
from sleepcore.results import MAX_PASSES


def register(subparsers) -> None:
    """Add the analysis subcommands to `sleepcore`'s subparsers."""
    _probe_parser(subparsers)
    _attribute_parser(subparsers)
    _sweep_parser(subparsers)
    _figures_parser(subparsers)


def _reporting_export_errors(command):
    """`command` with analysis.export's ExportError (no Chromium, a failed render) raised as the ValueError that
    `sleepcore` reports in one line: sleepcore never imports analysis, so it cannot catch ExportError itself."""

    @functools.wraps(command)
    def run(args) -> int:
        from analysis.export import ExportError

        try:
            return command(args)
        except ExportError as e:
            raise ValueError(str(e)) from e

    return run


def _probe_parser(sub) -> None:
    p = sub.add_parser("probe", help="linear probes on fast-weight states, per layer and pass (a probes table)")
    p.add_argument("checkpoint", help="a checkpoint folder, or a name under checkpoints/")
    p.add_argument(
        "--examples",
        "-K",
        type=int,
        default=512,
        help="held-out examples, split 70/30 per seed (default 512, at most 16,384)",
    )
    p.add_argument("--seeds", type=SEEDS, default=(0, 1, 2), help="probe seeds, comma-separated (default 0,1,2)")
    p.add_argument("--window", type=int, default=-1, help="the context window whose states are probed (-1 = last)")
    p.add_argument(
        "--max-fact-depth", type=int, help="largest fact_depth probed, at most the task's max_depth (the default)"
    )
    p.add_argument("--out", help="write the table to this file: .parquet or .csv")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: the fits are small)")
    p.add_argument("--no-progress", action="store_true")
    add_task_changes(p)
    p.set_defaults(func=_probe)


def _int_list(what: str, example: str):
    """An argparse type: comma-separated integers (`what`, such as `example`), repeats dropped in order. argparse
    names the flag in its message; the commands check the range."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(s) for s in text.split(",") if s.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {what}: comma-separated integers such as {example}; got {text!r}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"give at least one of the {what}, such as {example}; got {text!r}")
        return tuple(dict.fromkeys(values))

    return parse


SEEDS = _int_list("probe seeds", "0,1,2")
PASSES = _int_list("pass counts", "1,2,4")


PROBE_SEED_LIMIT = 2**31  # the probes table stores each probe seed in an Int32 column


def _probe(args) -> int:
    from analysis.probes import format_probes, probe_checkpoint

    if negative := [s for s in args.seeds if s < 0]:
        raise ValueError(f"--seeds must be integers >= 0, such as 0,1,2; got {negative}")
    if too_big := [s for s in args.seeds if s >= PROBE_SEED_LIMIT]:
        raise ValueError(
            f"--seeds must be below 2**31 ({PROBE_SEED_LIMIT}: the probes table stores them as Int32), such as "
            f"0,1,2; got {too_big}"
        )
    changes = task_changes_of(args.task_changes)

    def before() -> None:
        from analysis.probes import PROBES_FILE, context_window
        from sleepcore.checkpoint import read_info, resolve
        from sleepcore.results import task_for

        task, changed = task_for(read_info(args.checkpoint), changes)  # a bad change is told before anything runs
        out = Path(args.out) if args.out else None
        own = out is not None and out.name == PROBES_FILE and (out.parent / "config.json").is_file()
        if own and out.parent.resolve() != resolve(args.checkpoint).resolve():
            raise ValueError(
                f"--out {args.out} is the {PROBES_FILE} of checkpoint {out.parent.name}, not of {args.checkpoint} "
                "(the app reads it as that checkpoint's probes); write it beside the checkpoint probed, or elsewhere"
            )
        if own and changed:
            raise ValueError(
                f"--out {args.out} is a checkpoint's own {PROBES_FILE}, which holds its probes on the task it was "
                "trained on (the app reads it); write probes on a changed task (--set) elsewhere"
            )
        if own and context_window(task, args.window) != context_window(task, -1):
            raise ValueError(
                f"--out {args.out} is a checkpoint's own {PROBES_FILE}, which holds its probes of the last context "
                f"window (the app reads it); write probes of --window {args.window} elsewhere"
            )
        _check_probe_examples(args.checkpoint, task, args.examples, args.max_fact_depth)

    _table_command(
        args,
        lambda: probe_checkpoint(
            args.checkpoint,
            examples=args.examples,
            seeds=args.seeds,
            window=args.window,
            max_fact_depth=args.max_fact_depth,
            progress=not args.no_progress,
            task_changes=changes,
        ),
        format_probes,
        before=before,
    )
    return 0


PROBE_SAMPLE_LIMIT = 8192  # the most examples sampled to find how many every fact depth needs (seconds at most)


def _check_probe_examples(checkpoint: str, task, examples: int, max_fact_depth: int | None) -> None:
    """Before any model runs: refuse a --max-fact-depth beyond `task`'s facts (the checkpoint's task, or the changed
    one the probes run on), and an --examples count that leaves some fact depth (from the task's first up to the
    largest probed) with fewer than 2 examples. A probe splits whole examples into train and test, so a fact depth
    needs 2 (analysis.probes.split_examples), and probe_models drops one with fewer without a word. The message gives
    the smallest count that serves every depth: the probed examples are a fixed sample (seed probes.DATA_SEED) whose
    first n are those of any larger one."""
    import numpy as np

    from analysis.probes import DATA_SEED, check_probe_count, task_facts

    check_probe_count(examples, "--examples")
    if max_fact_depth is not None and not 0 <= max_fact_depth <= task.max_depth:
        raise ValueError(
            f"--max-fact-depth must be from 0 to {task.max_depth} (the deepest facts of the task, {task.name}); "
            f"got {max_fact_depth}"
        )
    top = task.max_depth if max_fact_depth is None else max_fact_depth

    def examples_by_depth(n: int) -> dict[int, np.ndarray]:
        """The examples (indices, sorted) holding each fact depth, in the first n of the probed sample."""
        facts = task_facts(task, task.sample(n, seed=DATA_SEED, split="test"), task.max_depth)
        return {f.depth: np.unique(f.example) for f in facts}

    def short_of(have: dict[int, np.ndarray]) -> list[int]:
        return [d for d in depths if len(have.get(d, ())) < 2]

    have = examples_by_depth(examples)
    if not have:
        raise ValueError(f"the {examples} examples hold no fact to probe; give more --examples")
    first = min(have)  # the task's shallowest fact depth (every example holds it: t' = 0, k = 1 or a constant)
    if first > top:
        raise ValueError(f"--max-fact-depth {top} leaves nothing to probe: {task.name}'s facts start at depth {first}")
    depths = range(first, top + 1)
    if not (short := short_of(have)):
        return
    n = examples
    while short_of(have) and n < PROBE_SAMPLE_LIMIT:
        n = min(2 * n, PROBE_SAMPLE_LIMIT)
        have = examples_by_depth(n)
    if never := short_of(have):
        raise ValueError(
            f"--examples {examples} leaves fact depth(s) {', '.join(map(str, short))} with fewer than the 2 "
            f"examples a probe needs (one to train on, one to test), and even {n} examples leave depth(s) "
            f"{', '.join(map(str, never))} so; give a --max-fact-depth below {min(never)}"
        )
    need = max(int(have[d][1]) + 1 for d in depths)  # the sample's first n are those of any larger sample
    if short_of(examples_by_depth(need)):
        need = n  # (were they not, a count known to serve)
    raise ValueError(
        f"--examples {examples} leaves fact depth(s) {', '.join(map(str, short))} with fewer than the 2 examples a "
        f"probe needs (one to train on, one to test); {checkpoint} needs --examples >= {need} for every fact depth "
        f"from {first} to {top} (or a smaller --max-fact-depth)"
    )


def check_table_out(path: str, flag: str = "--out") -> None:
    """check_out for a table, whose format is its suffix: .parquet or .csv (analysis.export.export_table)."""
    from analysis.export import TABLE_FORMATS

    check_out(path, flag)
    if Path(path).suffix.lower() not in TABLE_FORMATS:
        raise ValueError(
            f"{flag} must end in {' or '.join(TABLE_FORMATS)} (the table's format); got {Path(path).name!r}"
        )


def check_browser(flag: str, value: str, instead: str = "") -> None:
    """Refuse, before any computing, a figure export (svg, pdf, png) where kaleido finds no Chromium to drive."""
    from analysis.export import NO_BROWSER, find_browser

    if find_browser() is None:
        raise ValueError(f"{flag} {value} {NO_BROWSER}{instead}")


def _table_command(args, make, describe, before=None, more=None):
    """Check args.threads and args.out (and run `before()`, more checks) before anything is computed; then run
    `make()` on args.threads CPU threads, print describe(table), and write it to args.out (.parquet or .csv).
    more(table): further files, as (write, what to print) pairs, prepared before the table is written, so that a
    failure there (a figure that will not render) leaves nothing half-written. Returns the table."""
    import torch

    from analysis.export import export_table

    check_threads(args.threads)
    if args.out:
        check_table_out(args.out)
    if before is not None:
        before()
    torch.set_num_threads(args.threads)
    df = make()
    print(describe(df))
    writes = [(lambda: export_table(df, args.out), f"wrote {len(df)} rows to {args.out}")] if args.out else []
    writes += more(df) if more is not None else []
    for write, said in writes:
        write()
        print(said)
    return df


def _attribute_parser(sub) -> None:
    p = sub.add_parser(
        "attribute",
        help="integrated gradients of each answer over the evicted tokens, through sleep truncated at n; "
        "Depo: path recall against a random-edge baseline",
    )
    p.add_argument("checkpoint", help="a checkpoint folder, or a name under checkpoints/")
    p.add_argument("--examples", "-K", type=int, default=16, help="held-out examples (default 16, at most 1,024)")
    p.add_argument("--seed", type=seed, default=0, help="the examples' seed (0 to 2**63 - 1; default 0)")
    p.add_argument(
        "--passes",
        type=PASSES,
        help="sleep run for these n passes, comma-separated (default 1..N: sleep truncated at each n; an n above "
        f"the trained N runs more passes than trained, as `sweep` does; at most {MAX_PASSES})",
    )
    p.add_argument("--n-steps", type=int, default=32, help="integration steps (default 32)")
    p.add_argument("--internal-batch-size", type=int, default=16, help="bounds memory (default 16)")
    p.add_argument("--out", help="write the attributions table to this file: .parquet or .csv")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_attribute)


def _attribute(args) -> int:
    from analysis.attribution import _check_steps, attribute_checkpoint, format_attributions

    def before() -> None:
        _check_steps(args.n_steps, args.internal_batch_size)  # its message first: it needs no checkpoint
        if never_evicts(args.checkpoint):
            raise ValueError(
                f"{args.checkpoint} never evicts (full attention keeps the whole context), so no token is evicted "
                "and there is nothing to attribute: attribute a model under eviction (a hybrid, attn-only, wake-loop)"
            )

    _table_command(
        args,
        lambda: attribute_checkpoint(
            args.checkpoint,
            examples=args.examples,
            seed=args.seed,
            passes=args.passes,
            n_steps=args.n_steps,
            internal_batch_size=args.internal_batch_size,
            progress=not args.no_progress,
        ),
        format_attributions,
        before=before,
    )
    return 0


def _sweep_parser(sub) -> None:
    p = sub.add_parser(
        "sweep", help="accuracy of one checkpoint at several test-time N (sleep passes), on the same held-out examples"
    )
    p.add_argument("checkpoint", help="a checkpoint folder, or a name under checkpoints/")
    p.add_argument(
        "--passes",
        "-N",
        type=PASSES,
        help=f"test-time N, comma-separated (default: 1 .. 2 × trained N, or 1 for a model that never evicts; at most "
        f"{MAX_PASSES})",
    )
    p.add_argument(
        "--examples", type=int, default=250, help="held-out sequences per depth (default 250, at most 20,000)"
    )
    p.add_argument(
        "--seed", type=seed, default=777, help="the examples' seed (0 to 2**63 - 1; default 777, as in RESULTS.md)"
    )
    p.add_argument("--out", help="write the results table (every count, per N and depth) here: .parquet or .csv")
    p.add_argument("--figure", help="write the accuracy-vs-N figure here: .html, or .svg/.pdf/.png (needs Chromium)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true")
    add_task_changes(p)
    p.set_defaults(func=_reporting_export_errors(_sweep))


def _sweep(args) -> int:
    from analysis.figures import accuracy_vs_test_passes, format_sweep, headline_metric, results_table
    from sleepcore.checkpoint import configs_from, read_info
    from sleepcore.results import SWEEP_FILE, sweep_checkpoint, task_for

    figure = Path(args.figure) if args.figure else None
    fmt = figure.suffix.lower().lstrip(".") if figure is not None else None
    if figure is not None and fmt not in ("html", *FORMATS):
        raise ValueError(f"--figure must end in .html, {', '.join('.' + f for f in FORMATS)}; got {figure.name!r}")
    if args.examples < 1:
        raise ValueError(f"--examples must be >= 1; got {args.examples}")
    if figure is not None:
        check_out(figure, "--figure")
        if fmt in FORMATS:
            check_browser("--figure", str(figure), ", or write the figure as .html, which needs none")
    trained = configs_from(read_info(args.checkpoint))[1].passes  # checked: a damaged config.json is told
    # by default 1 .. 2 × the trained N; N = 1 alone for a model that never evicts, where N changes nothing
    default = [1] if never_evicts(args.checkpoint) else list(range(1, 2 * trained + 1))
    passes = list(args.passes or default)
    given = "" if args.passes else f"the default N = {','.join(map(str, passes))} (1 .. 2 × trained N)"
    check_test_passes(args.checkpoint, passes, given)
    progress = not args.no_progress
    changes = task_changes_of(args.task_changes)
    _, changed = task_for(read_info(args.checkpoint), changes)  # a bad change is told before the sweep runs
    out = Path(args.out) if args.out else None
    if changed and out is not None and out.name == SWEEP_FILE and (out.parent / "config.json").is_file():
        raise ValueError(
            f"--out {args.out} is a checkpoint's own {SWEEP_FILE}, which holds its sweep on the task it was trained "
            "on (the app and the model card read it); write a sweep on a changed task (--set) elsewhere"
        )
    make = lambda: results_table(  # noqa: E731
        sweep_checkpoint(args.checkpoint, passes, args.examples, args.seed, progress, task_changes=changes)
    )

    def figure_file(df) -> list:
        """The figure, rendered now (before the table is written), and how to write it."""
        if figure is None:
            return []
        from sleepcore.checkpoint import atomic_write

        fig = accuracy_vs_test_passes(df, headline_metric(df))
        if fmt == "html":  # plotly.js inside: the file opens offline
            html = fig.to_html(include_plotlyjs=True)
            write = lambda tmp: Path(tmp).write_text(html, encoding="utf-8")  # noqa: E731
        else:
            from analysis.export import figure_bytes

            data = figure_bytes(fig, fmt)
            write = lambda tmp: Path(tmp).write_bytes(data)  # noqa: E731
        return [(lambda: atomic_write(figure, write), f"wrote {figure}")]

    _table_command(args, make, format_sweep, more=figure_file)
    return 0


FORMATS = ("svg", "pdf", "png")


def _figures_parser(sub) -> None:
    p = sub.add_parser("figures", help="regenerate the figure set from the shipped checkpoints (talk template)")
    p.add_argument("--out", default="figures", help="output folder (default: figures/)")
    p.add_argument("--format", default="svg,pdf,png", help="comma-separated: svg, pdf, png (default all three)")
    p.add_argument("--checkpoints", help="comma-separated checkpoint names (default: all shipped)")
    p.set_defaults(func=_reporting_export_errors(_figures))


def _figures(args) -> int:
    from tqdm import tqdm

    from analysis.export import figure_bytes
    from analysis.figure_set import all_figures
    from sleepcore.checkpoint import atomic_write, checkpoint_root, require_checkpoints

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown format(s) {bad}; valid: {', '.join(FORMATS)}")
    known = require_checkpoints(checkpoint_root())
    names = [n.strip() for n in args.checkpoints.split(",")] if args.checkpoints else known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown checkpoint(s) {unknown}; known: {', '.join(known)}")
    check_out(args.out, folder=True)  # the text as given: Path("") would be the current folder
    out = Path(args.out)
    check_browser("--format", ",".join(formats))
    # All or nothing: every checkpoint's inputs are checked and every file rendered before the first is written.
    figures = all_figures(names)
    rendered = {}
    with tqdm(total=len(figures) * len(formats), desc="rendering", unit="file") as bar:
        for stem, fig in figures:
            for fmt in formats:
                rendered[f"{stem}.{fmt}"] = figure_bytes(fig, fmt)
                bar.update(1)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in rendered.items():
        atomic_write(out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    print(f"wrote {len(rendered)} files to {out}/")
    return 0


if __name__ == "__main__":  # `python -m analysis.cli ARGS` is `sleepcore ARGS`, whose subcommands this module adds
    import sys

    from sleepcore.cli import main

    sys.exit(main())
