"""The `sleepcore` command line. Core subcommands live here; layers above (analysis, app) add theirs through the
`sleepcore.commands` entry-point group, so this package never imports them."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

from sleepcore.checkpoint import CheckpointError, check_out
from sleepcore.config import SEED_LIMIT, cores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sleepcore", description="Sleep models: train, evaluate, trace, explore.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _trace_parser(sub)
    _bench_parser(sub)
    sub.add_parser("presets", help="list the presets").set_defaults(func=_presets)
    _ship_parser(sub)
    for ep in entry_points(group="sleepcore.commands"):
        ep.load()(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (ValueError, CheckpointError) as e:
        print(f"sleepcore {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that cannot be read or written: name it (os.replace's target is filename2)
        path = e.filename2 or e.filename
        print(f"sleepcore {args.command}: error: {f'{path}: {e.strerror}' if path else e}", file=sys.stderr)
        return 2


# --- checks every command makes before it computes (the analysis commands use them too) ----------------------


def seed(text: str) -> int:
    """An argparse type: a seed, an integer from 0 to 2**63 - 1 (what an Int64 column of the results holds and
    torch's generators take)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected a seed: an integer from 0 to 2**63 - 1 ({SEED_LIMIT - 1}); got {text!r}"
        )
    return value


def check_threads(threads: int, flag: str = "--threads") -> None:
    """CPU threads for torch: 1 up to this machine's cores. Far more only slows a run down, and some 100,000 made
    torch crash (a segfault) or hang while it started them."""
    if not 1 <= threads <= cores():
        raise ValueError(f"{flag} must be 1 to {cores()} (this machine's cores); got {threads}")


def add_threads(p) -> None:
    """`--threads` for the commands that run a checkpoint on torch's default thread count unless told (eval, trace)."""
    p.add_argument(
        "--threads", type=int, help="CPU threads (default: torch's own, $OMP_NUM_THREADS where set, else one per core)"
    )


def use_threads(threads: int | None) -> None:
    """Check `--threads` (None: torch's default, left as it is) and run torch on that many CPU threads."""
    if threads is None:
        return
    check_threads(threads)
    import torch

    torch.set_num_threads(threads)


def never_evicts(checkpoint: str | Path) -> bool:
    """Does the checkpoint's model keep its whole context (sleep.window null: full attention), so that it never
    sleeps on a window and never evicts a token? (A config that cannot say is left to the loader's message.)"""
    from sleepcore.checkpoint import read_info

    return _never_evicts(read_info(checkpoint).get("sleep"))


def _never_evicts(sleep) -> bool:
    return isinstance(sleep, dict) and "window" in sleep and sleep["window"] is None


def check_test_passes(checkpoint: str | Path, passes: list[int], given: str = "") -> None:
    """Refuse a test-time N other than 1 for a model that never evicts (and does not loop when answering): it has
    no context window to sleep on, so every N gives the same answers, and a result labelled N = 3 would claim
    passes that never ran. `given`: how the N were given, for the message (default: --passes and the values)."""
    from sleepcore.checkpoint import read_info
    from sleepcore.results import _check_passes  # N in 1..MAX_PASSES first: that message needs no checkpoint

    _check_passes(passes)
    if all(n == 1 for n in passes):
        return
    sleep = read_info(checkpoint).get("sleep")
    if not _never_evicts(sleep) or sleep.get("loop", "sleep") == "wake":  # the loop's N passes run when answering
        return
    given = given or f"--passes {','.join(map(str, passes))}"
    raise ValueError(
        f"{checkpoint} never evicts (full attention keeps the whole context), so it never sleeps and test-time N "
        f"changes nothing: only N = 1 is meaningful; got {given}"
    )


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a sleep model from a preset")
    p.add_argument("--preset", required=True, help="e.g. rule110-mini, depo-mini, gsm-mini (see `sleepcore presets`)")
    p.add_argument(
        "--passes",
        "-N",
        type=int,
        default=1,
        help="N: sleep passes per context window (1 = hybrid; wake-loop: per read-out window)",
    )
    p.add_argument(
        "--variant",
        default="hybrid",
        help="hybrid, attn-only, full-attention, wide, or wake-loop (the N passes run when answering, not in sleep)",
    )
    p.add_argument(
        "--out", required=True, help="output folder (checkpoint written there); one holding a run needs --resume"
    )
    p.add_argument("--max-steps", type=int, help="train for this many optimizer steps (overrides the preset)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one preset setting, e.g. task.order=shallowest, model.conv_size=6, train.lr=1e-3 "
        "(SECTION: model, sleep, task, train; VALUE as JSON, else a string); repeatable; saved in the checkpoint",
    )
    p.add_argument("--stop-after", type=int, help="stop at this step, as a kill would; continue with --resume")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--seed", type=seed, help="parameter initialisation seed (0 to 2**63 - 1)")
    p.add_argument("--data-seed", type=seed, help="data order seed (0 to 2**63 - 1)")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--nproc", type=int, default=1, help="data-parallel processes on this machine (docs/SCALING.md)")
    p.set_defaults(func=_train)


def _train(args) -> int:
    from sleepcore.presets import build
    from sleepcore.train import train

    if args.passes < 1:
        raise ValueError(f"--passes must be >= 1; got {args.passes}")
    if not 1 <= args.nproc <= cores():  # more processes than cores only time-share them (as --threads)
        raise ValueError(f"--nproc must be 1 to {cores()} (this machine's cores); got {args.nproc}")
    if args.stop_after is not None and args.stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1; got {args.stop_after}")
    if args.threads is not None:
        check_threads(args.threads)
    configs = build(
        args.preset,
        args.passes,
        args.variant,
        overrides=parse_settings(args.set),
        steps=args.max_steps,
        seed=args.seed,
        data_seed=args.data_seed,
        threads=args.threads,
    )
    check_out(args.out, folder=True)  # before the first step: a run that cannot be saved is not started
    if args.nproc > 1:  # every worker runs this command without --nproc, as one rank of the group
        from sleepcore.train import check_run_folder, launch

        check_run_folder(args.out, args.resume, args.stop_after)  # one clear message here, not one per worker
        return launch(args.nproc, _worker_argv(args))
    extra = {
        "preset": args.preset,
        "variant": args.variant,
        "command": "sleepcore " + shlex.join(_reproducible_argv(args)),
    }
    info = train(
        args.out, *configs, resume=args.resume, stop_after=args.stop_after, extra=extra, progress=not args.no_progress
    )
    if info.get("eval"):
        from sleepcore.tasks import get_task

        task = get_task(configs[2].name, **configs[2].params)  # names its effective depth, as `sleepcore eval` does
        res = {"effective_name": task.effective_depth_name, **info["eval"]}
        print(format_eval(res, title=f"{args.out} (N={args.passes})"))
    elif args.stop_after is not None and args.stop_after < configs[3].steps:
        print(f"stopped at step {args.stop_after} of {configs[3].steps} (--stop-after): continue with --resume")
    return 0


def _reproducible_argv(args) -> list[str]:
    out = ["train", "--preset", args.preset, "--passes", str(args.passes)]
    if args.variant != "hybrid":
        out += ["--variant", args.variant]
    for flag, value in (("--max-steps", args.max_steps), ("--seed", args.seed), ("--data-seed", args.data_seed)):
        if value is not None:
            out += [flag, str(value)]
    for setting in args.set:
        out += ["--set", setting]
    return out + ["--out", str(args.out)]


def parse_settings(items: list[str]) -> dict[str, dict]:
    """`--set SECTION.KEY=VALUE` items as build()'s overrides; VALUE is read as JSON, else kept as a string."""
    from sleepcore.presets import SECTIONS

    out: dict[str, dict] = {}
    for item in items:
        name, eq, text = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not eq or not dot or not key or section not in SECTIONS:
            raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(SECTIONS)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out.setdefault(section, {})[key] = value
    return out


def _worker_argv(args) -> list[str]:
    """The arguments of `python -m sleepcore.train` for each torchrun worker: this command's, less --nproc."""
    out = _reproducible_argv(args)[1:]
    for flag, value in (("--stop-after", args.stop_after), ("--threads", args.threads)):
        if value is not None:
            out += [flag, str(value)]
    return out + [flag for flag, on in (("--resume", args.resume), ("--no-progress", args.no_progress)) if on]


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="accuracy by depth with 95%% intervals on held-out examples")
    p.add_argument("checkpoint", nargs="?", help="a checkpoint folder, or a name under checkpoints/")
    p.add_argument(
        "--all", action="store_true", help="every checkpoint under checkpoints/ ($SLEEPCORE_CHECKPOINTS where set)"
    )
    p.add_argument("--passes", "-N", type=int, help="N at test time (default: the trained N)")
    p.add_argument(
        "--examples", type=int, default=250, help="held-out sequences per depth (default 250, at most 20,000)"
    )
    p.add_argument("--seed", type=seed, default=777, help="the examples' seed (0 to 2**63 - 1; default 777)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_task_changes(p)
    add_threads(p)
    p.add_argument("--markdown", help="with --all: write the results tables to this Markdown file")
    p.add_argument(
        "--results-json", help="with --all: write every result, every count, to this JSON file (the app charts it)"
    )
    p.set_defaults(func=_eval)


def add_task_changes(p) -> None:
    """`--set task.KEY=VALUE` for the commands that run trained weights on their task (eval, sweep, trace, probe)."""
    p.add_argument(
        "--set",
        dest="task_changes",
        action="append",
        default=[],
        metavar="task.KEY=VALUE",
        help="test the weights on a changed task: one of its settings, e.g. task.max_depth=6 with "
        "task.depths=[1,2,3,4,5,6] (gsm: longer chains) or task.max_constant=9; repeatable. Settings that change "
        "the vocabulary or the window are refused: the weights fix them",
    )


def task_changes_of(items: list[str]) -> dict | None:
    """`--set task.KEY=VALUE` items as {KEY: VALUE}; ValueError for another section (the weights fix the model's and
    sleep's settings; test-time N is --passes)."""
    if not items:
        return None
    other = [item for item in items if not item.strip().startswith("task.")]
    if other:
        raise ValueError(
            f"--set changes only task settings here (task.KEY=VALUE); got {', '.join(map(repr, other))}: the weights "
            "fix the model's and sleep's settings, and --passes sets the test-time N"
        )
    changes = parse_settings(items)["task"]
    if "name" in changes:
        raise ValueError(
            "--set task.name: the weights fix the task they were trained on; --set task.KEY changes its settings"
        )
    return changes


def _eval(args) -> int:
    from sleepcore.results import command, evaluate_all, evaluate_checkpoint, results_markdown, write_results_json

    if args.passes is not None and args.passes < 1:
        raise ValueError(f"--passes must be >= 1; got {args.passes}")
    changes = task_changes_of(args.task_changes)
    use_threads(args.threads)
    if args.all:
        if args.checkpoint or args.passes is not None or changes:
            raise ValueError(
                "--all evaluates every shipped checkpoint at its trained N, on its own task: give no checkpoint, "
                "--passes or --set"
            )
        for flag, path in (("--markdown", args.markdown), ("--results-json", args.results_json)):
            if path:
                check_out(path, flag)  # before every checkpoint is evaluated
        results = evaluate_all(args.examples, args.seed, progress=not args.no_progress)
        written_by = command(args.examples, args.seed, args.markdown, args.results_json)
        text = results_markdown(args.examples, args.seed, results, written_by)
        if args.markdown:
            from sleepcore.checkpoint import atomic_write

            atomic_write(Path(args.markdown), lambda tmp: Path(tmp).write_text(text))
        if args.results_json:
            write_results_json(args.results_json, results, args.examples, args.seed, written_by)
        print(json.dumps(results, indent=2) if args.json else text)
        return 0
    if args.markdown or args.results_json:
        raise ValueError("--markdown and --results-json write the tables of every checkpoint: use them with --all")
    if not args.checkpoint:
        raise ValueError("give a checkpoint (folder or name) or --all")
    if args.passes is not None:
        check_test_passes(args.checkpoint, [args.passes])
    progress = not (args.json or args.no_progress)
    res = evaluate_checkpoint(
        args.checkpoint, args.passes, args.examples, args.seed, progress=progress, task_changes=changes
    )
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(format_eval(res, title=f"{args.checkpoint} (test N={res['passes']}){changed_text(res)}"))
    _note_unfinished(args.checkpoint)
    return 0


def _note_unfinished(checkpoint: str) -> None:
    """A note on stderr where the weights are those of a run that has not finished training (stopped or killed)."""
    from sleepcore.checkpoint import read_info

    info = read_info(checkpoint)
    if info.get("finished") is not True:
        steps = info.get("train", {}).get("steps", "?")
        print(
            f"note: {checkpoint} holds an unfinished run: its weights at step {info.get('step', '?')} of {steps}",
            file=sys.stderr,
        )


def _trace_parser(sub) -> None:
    p = sub.add_parser("trace", help="record a trace (states, attention, anytime readout) of K held-out examples")
    p.add_argument("checkpoint", help="a checkpoint folder, or a name under checkpoints/")
    p.add_argument(
        "--examples",
        "-K",
        type=int,
        default=8,
        help="held-out examples, spread over the task's depths (default 8, at most 1,024)",
    )
    p.add_argument(
        "--seed", type=seed, default=0, help="seed the examples are sampled from (0 to 2**63 - 1; default 0)"
    )
    p.add_argument("--passes", "-N", type=int, help="N at test time (default: the trained N)")
    p.add_argument("--out", required=True, help="trace folder to write (docs/TRACE_SCHEMA.md)")
    add_task_changes(p)
    add_threads(p)
    p.set_defaults(func=_trace)


def _trace(args) -> int:
    from sleepcore.trace import META, check_trace_out, trace_checkpoint, write_trace

    check_trace_out(
        args.out, "--out"
    )  # before the trace is recorded: a folder holding anything but a trace, or unwritable
    if args.passes is not None:
        check_test_passes(args.checkpoint, [args.passes])
    use_threads(args.threads)
    t0 = time.perf_counter()
    changes = task_changes_of(args.task_changes)
    trace = trace_checkpoint(args.checkpoint, args.examples, args.seed, args.passes, task_changes=changes)
    m = write_trace(trace, args.out)
    out = Path(args.out)
    print(
        f"trace of {args.checkpoint}: {m['examples']} examples, N={m['passes']}, {len(m['windows'])} windows"
        + changed_text(m)
    )
    total = 0
    for name in [*m["files"], META]:
        size = (out / name).stat().st_size
        total += size
        print(f"  {out / name}  {size / 1024:,.1f} KiB")
    print(f"wrote {total / 1024:,.1f} KiB in {time.perf_counter() - t0:.2f} s")
    return 0


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks: wake latency, training speed, the fast-weight op, the recorder's cost"
    )
    p.add_argument(
        "which",
        choices=("latency", "train", "ops", "recorder", "kernels"),
        help="latency: decoding and sleep; train: tokens/s; ops: the fast-weight op per backend (time, GB/s, "
        "FLOP/s); recorder: what record points cost a training step when recording is off; kernels: the Triton "
        "kernels compiled for a GPU, here, without one (shared memory, registers, spills)",
    )
    p.add_argument("--out", default="bench", help="folder for the CSV tables (and latency.html)")
    p.add_argument("--quick", action="store_true", help="tiny settings and few repeats: a smoke run")
    p.add_argument("--threads", type=int, default=1, help="CPU threads")
    p.add_argument("--target", help="kernels: the GPU to compile for: sm_90 (the default), sm_80, sm_89 or sm_86")
    p.add_argument("--heads", help="kernels: head sizes KxV, comma-separated (default 64x64,128x128)")
    p.add_argument(
        "--all-configs", action="store_true", help="kernels: every config the autotuner tries, not the fixed one"
    )
    p.set_defaults(func=_bench)


def _bench(args) -> int:
    from sleepcore.bench import run

    check_threads(args.threads)
    check_out(args.out, folder=True)
    if args.which == "kernels":
        from sleepcore.kernel_resources import run_kernels

        heads = args.heads or "64x64,128x128"
        return run_kernels(Path(args.out), args.target or "sm_90", heads, args.all_configs, quick=args.quick)
    flags = (("--target", args.target), ("--heads", args.heads), ("--all-configs", args.all_configs))
    if given := [flag for flag, value in flags if value]:
        raise ValueError(f"{' and '.join(given)}: settings of `bench kernels`, not of `bench {args.which}`")
    return run(args.which, Path(args.out), quick=args.quick, threads=args.threads)


def changed_text(res: dict) -> str:
    """`, on a changed task: KEY trained → here, ...` for an evaluation off the trained task, else ''."""
    from sleepcore.tasks import changes_text

    changed = res.get("task_changed")
    return f", on a changed task: {changes_text(changed)}" if changed else ""


def format_eval(res: dict, title: str = "") -> str:
    lines = [title, f"{'depth':>5}  {'answer acc [95% CI]':<24} {'n':>6}  {'exact [95% CI]':<24} {'n':>5}"]
    exact = res.get("exact", {})
    for d, c in res["answers"].items():
        e = exact.get(d)
        ex = f"{e['acc']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]" if e else "—"
        lines.append(
            f"{d:>5}  {c['acc']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]{'':<4} {c['n']:>6}  {ex:<24} "
            f"{e['n'] if e else '':>5}"
        )
    if res.get("effective"):
        lines += _answer_block(
            f"by the depth an answer really needs ({res.get('effective_name', 'effective depth')})", res["effective"]
        )
    if res.get("first_about"):
        lines += _answer_block(f"the first answer of each sequence alone: {res['first_about']}", res["first"])
    return "\n".join(lines)


def _answer_block(title: str, cells: dict) -> list[str]:
    lines = ["", title, f"{'depth':>5}  {'answer acc [95% CI]':<24} {'n':>6}"]
    return lines + [
        f"{d:>5}  {c['acc']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]{'':<4} {c['n']:>6}" for d, c in cells.items()
    ]


def _ship_parser(sub) -> None:
    p = sub.add_parser(
        "ship",
        help="copy a finished run into checkpoints/NAME ($SLEEPCORE_CHECKPOINTS/NAME where set), with a model card",
    )
    p.add_argument("run", nargs="?", help="a training output folder")
    p.add_argument("--name", help="the checkpoint's name under checkpoints/ ($SLEEPCORE_CHECKPOINTS where set)")
    p.add_argument(
        "--replace", action="store_true", help="put the run under a name that holds other weights (a retrained model)"
    )
    p.add_argument(
        "--refresh-cards",
        action="store_true",
        help="rewrite the README.md of every checkpoint there from its config",
    )
    p.set_defaults(func=_ship)


def _ship(args) -> int:
    from sleepcore.cards import refresh_cards, ship

    if args.refresh_cards:
        if args.run or args.name or args.replace:
            raise ValueError("--refresh-cards takes no run, --name or --replace")
        for path in refresh_cards():
            print(f"wrote {path}")
        return 0
    if not args.run or not args.name:
        raise ValueError("give a run folder and --name (or --refresh-cards)")
    print(f"shipped {args.run} to {ship(args.run, args.name, replace=args.replace)}")
    return 0


def _presets(args) -> int:
    from sleepcore.presets import PRESETS

    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.about}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
