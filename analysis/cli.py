"""The analysis subcommands of `sleepcore`, added through the `sleepcore.commands` entry-point group (pyproject.toml),
so sleepcore itself never imports analysis."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the analysis subcommands to `sleepcore`'s subparsers."""
    _probe_parser(subparsers)


def _probe_parser(sub) -> None:
    p = sub.add_parser("probe", help="linear probes on fast-weight states, per layer and pass (a probes table)")
    p.add_argument("checkpoint", help="a checkpoint folder, or a name under checkpoints/")
    p.add_argument("--examples", "-K", type=int, default=512, help="held-out examples, split 70/30 per seed")
    p.add_argument("--seeds", type=_int_list, default=(0, 1, 2), help="probe seeds, comma-separated (default 0,1,2)")
    p.add_argument("--window", type=int, default=-1, help="the context window whose states are probed (-1 = last)")
    p.add_argument("--max-fact-depth", type=int, help="largest fact_depth probed (default: the task's max_depth)")
    p.add_argument("--out", help="write the table to this Parquet file")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: the fits are small)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_probe)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one seed")
    return values


def _probe(args) -> int:
    import torch

    from analysis.probes import format_probes, probe_checkpoint
    from sleepcore.checkpoint import atomic_write

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1; got {args.threads}")
    torch.set_num_threads(args.threads)
    df = probe_checkpoint(
        args.checkpoint,
        examples=args.examples,
        seeds=args.seeds,
        window=args.window,
        max_fact_depth=args.max_fact_depth,
        progress=not args.no_progress,
    )
    print(format_probes(df))
    if args.out:
        atomic_write(Path(args.out), df.write_parquet)
        print(f"wrote {len(df)} rows to {args.out}")
    return 0
