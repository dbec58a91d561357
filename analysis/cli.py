"""The analysis subcommands of `sleepcore`, added through the `sleepcore.commands` entry-point group (pyproject.toml),
so sleepcore itself never imports analysis."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

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
    p.add_argument("--examples", "-K", type=int, default=512, help="held-out examples, split 70/30 per seed")
    p.add_argument("--seeds", type=SEEDS, default=(0, 1, 2), help="probe seeds, comma-separated (default 0,1,2)")
    p.add_argument("--window", type=int, default=-1, help="the context window whose states are probed (-1 = last)")
    p.add_argument("--max-fact-depth", type=int, help="largest fact_depth probed (default: the task's max_depth)")
    p.add_argument("--out", help="write the table to this Parquet file")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: the fits are small)")
    p.add_argument("--no-progress", action="store_true")
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


def check_out(path: str | Path, flag: str = "--out", folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before any computing: a file path that is a folder (or a
    folder that is a file), or one below a file or an unwritable folder. Missing folders are fine: writes make them."""
    path = Path(path)
    kind = "folder" if folder else "file"
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{flag} {path} is {'a file' if folder else 'a folder'}; give a {kind} path")
    # the nearest that exists of: the folder itself (written into), then the folders above (/ at worst); a file is
    # written through a temporary file beside it, so its own folder is what must be writable
    here = (path.absolute(),) if folder else ()
    above = next(p for p in (*here, *path.absolute().parents) if p.exists())
    if not above.is_dir():
        raise ValueError(f"{flag} {path}: {above} is a file, so no {kind} can be made below it; give another path")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: the folder {above} is not writable; give a path in a writable folder")


def _probe(args) -> int:
    from analysis.probes import format_probes, probe_checkpoint

    if negative := [s for s in args.seeds if s < 0]:
        raise ValueError(f"--seeds must be integers >= 0, such as 0,1,2; got {negative}")
    _table_command(
        args,
        lambda: probe_checkpoint(
            args.checkpoint,
            examples=args.examples,
            seeds=args.seeds,
            window=args.window,
            max_fact_depth=args.max_fact_depth,
            progress=not args.no_progress,
        ),
        format_probes,
    )
    return 0


def _table_command(args, make, describe):
    """Run `make()` on args.threads CPU threads, print describe(table), write it to args.out as Parquet; returns
    the table."""
    import torch

    from sleepcore.checkpoint import atomic_write

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1; got {args.threads}")
    if args.out:
        check_out(args.out)
    torch.set_num_threads(args.threads)
    df = make()
    print(describe(df))
    if args.out:
        atomic_write(Path(args.out), df.write_parquet)
        print(f"wrote {len(df)} rows to {args.out}")
    return df


def _attribute_parser(sub) -> None:
    p = sub.add_parser(
        "attribute",
        help="integrated gradients of each answer over the evicted tokens, through sleep truncated at n; "
        "Depo: path recall against a random-edge baseline",
    )
    p.add_argument("checkpoint", help="a checkpoint folder, or a name under checkpoints/")
    p.add_argument("--examples", "-K", type=int, default=16, help="held-out examples (default 16)")
    p.add_argument("--seed", type=int, default=0, help="the examples' seed")
    p.add_argument(
        "--passes",
        type=PASSES,
        help="sleep run for these n passes, comma-separated (default 1..N: sleep truncated at each n; an n above "
        f"the trained N runs more passes than trained, as `sweep` does; at most {MAX_PASSES})",
    )
    p.add_argument("--n-steps", type=int, default=32, help="integration steps (default 32)")
    p.add_argument("--internal-batch-size", type=int, default=16, help="bounds memory (default 16)")
    p.add_argument("--out", help="write the attributions table to this Parquet file")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_attribute)


def _attribute(args) -> int:
    from analysis.attribution import attribute_checkpoint, format_attributions

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
        help=f"test-time N, comma-separated (default: 1 .. 2 × trained N; at most {MAX_PASSES})",
    )
    p.add_argument("--examples", type=int, default=250, help="held-out sequences per depth (default 250)")
    p.add_argument("--seed", type=int, default=777, help="the examples' seed (default 777, as in RESULTS.md)")
    p.add_argument("--out", help="write the results table (every count, per N and depth) to this Parquet file")
    p.add_argument("--figure", help="write the accuracy-vs-N figure here: .html, or .svg/.pdf/.png (needs Chromium)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_reporting_export_errors(_sweep))


def _sweep(args) -> int:
    from analysis.figures import accuracy_vs_test_passes, format_sweep, headline_metric, results_table
    from sleepcore.checkpoint import read_info
    from sleepcore.results import sweep_checkpoint

    figure = Path(args.figure) if args.figure else None
    if figure is not None and figure.suffix.lstrip(".") not in ("html", *FORMATS):
        raise ValueError(f"--figure must end in .html, {', '.join('.' + f for f in FORMATS)}; got {figure.name!r}")
    if args.examples < 1:
        raise ValueError(f"--examples must be >= 1; got {args.examples}")
    if figure is not None:
        check_out(figure, "--figure")
    trained = read_info(args.checkpoint)["sleep"]["passes"]
    passes = list(args.passes or range(1, 2 * trained + 1))
    progress = not args.no_progress
    make = lambda: results_table(sweep_checkpoint(args.checkpoint, passes, args.examples, args.seed, progress))  # noqa: E731
    df = _table_command(args, make, format_sweep)
    if figure is not None:
        fig = accuracy_vs_test_passes(df, headline_metric(df))
        if figure.suffix == ".html":  # plotly.js inside: the file opens offline
            from sleepcore.checkpoint import atomic_write

            atomic_write(figure, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))
        else:
            from analysis.export import export_figure

            export_figure(fig, figure, figure.suffix.lstrip("."))
        print(f"wrote {figure}")
    return 0


FORMATS = ("svg", "pdf", "png")


def _figures_parser(sub) -> None:
    p = sub.add_parser("figures", help="regenerate the figure set from the shipped checkpoints (talk template)")
    p.add_argument("--out", default="figures", help="output folder (default: figures/)")
    p.add_argument("--format", default="svg,pdf,png", help="comma-separated: svg, pdf, png")
    p.add_argument("--checkpoints", help="comma-separated checkpoint names (default: all shipped)")
    p.set_defaults(func=_reporting_export_errors(_figures))


def _figures(args) -> int:
    from tqdm import tqdm

    from analysis import session
    from analysis.export import export_figure
    from analysis.figure_set import checkpoint_figures, headline_figures

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown format(s) {bad}; valid: {', '.join(FORMATS)}")
    known = session.checkpoint_names()
    names = [n.strip() for n in args.checkpoints.split(",")] if args.checkpoints else known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown checkpoint(s) {unknown}; known: {', '.join(known) or 'none'}")
    out = Path(args.out)
    check_out(out, folder=True)
    written = 0
    with tqdm(desc="figures", unit="file") as bar:
        for source in [headline_figures(names)] + [checkpoint_figures(n) for n in names]:
            for stem, fig in source:
                for fmt in formats:
                    export_figure(fig, out / f"{stem}.{fmt}", fmt)
                    written += 1
                    bar.update(1)
    print(f"wrote {written} files to {out}/")
    return 0
