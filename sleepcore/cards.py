"""Model cards written from config.json, and shipping a finished run into checkpoints/.

Every number in a card comes from the checkpoint's own config.json, which `sleepcore train` wrote, or from the
test-time sweep shipped beside it (sweep.parquet, which `sleepcore sweep` wrote); the card says which command
reproduces the model and which reproduces each table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sleepcore.checkpoint import (
    CHECKPOINT_ROOT,
    CheckpointError,
    atomic_write,
    checkpoint_root,
    file_sha256,
    load_checkpoint,
    named,
    read_info,
    require_checkpoints,
    weights_sha256,
)
from sleepcore.config import _is_name
from sleepcore.results import SWEEP_FILE, cell_text, headline_metric, read_sweep, sweep_command
from sleepcore.tasks import changes_text, get_task

VARIANT_TEXT = {
    "hybrid": "the sleep model: attention and fast-weight blocks under hard KV eviction",
    "attn-only": "the attention-only transformer under the same eviction (a sanity check: it must be at chance)",
    "full-attention": "the full-attention transformer that never evicts (an upper reference, not a competitor)",
    "wide": "the hybrid with a 4× wider MLP: the N = 1 capacity control that tells depth from capacity",
    "wake-loop": "the wake-loop control: the hybrid that spends its N passes on the windows it answers from, each from"
    " the state they began with, instead of sleeping on context (the same compute per window, paid at prediction time;"
    " its context windows are written once)",
}


def _relative(command: str) -> str:
    """The recorded command, with paths inside this repository written relative to its root (where it is run)."""
    return command.replace(f"{CHECKPOINT_ROOT.parent.resolve()}/", "")


NOTES = CHECKPOINT_ROOT / "NOTES"  # NOTES/<preset>.md: what the models of a preset reach against their targets


def model_card(name: str, info: dict, notes: Path | None = None, sweep=None) -> str:
    """The card of checkpoint `name` from its config.json `info`, its preset's notes, and its shipped sweep (a
    `sleepcore.results.read_sweep` table) if any."""
    sleep, model, train, training = info["sleep"], info["model"], info["train"], info.get("training", {})
    variant = info.get("variant", "hybrid")
    N = sleep["passes"]
    lines = [
        f"# {name}",
        "",
        f"{VARIANT_TEXT.get(variant, variant)}, trained on **{info['task']['name']}** "
        f"(preset `{info.get('preset', '?')}`) with **N = {N}** "
        + (
            f"pass{'es' if N > 1 else ''} over every window it answers from, and one over each context window."
            if sleep.get("loop", "sleep") == "wake"
            else f"sleep pass{'es' if N > 1 else ''} per context window"
            f"{'' if sleep['window'] else ' (no eviction: one window)'}."
        ),
        "",
        "## How it was trained",
        f"- Command: `{_relative(info.get('command', '?'))}`, then `sleepcore ship <that --out> --name {name}`",
        f"- {train['steps']} optimizer steps of {train['batch_size']} sequences "
        f"({training.get('tokens', '?')} training tokens), AdamW lr {train['lr']} (β {tuple(train['betas'])}), "
        f"warm-up {train['warmup']}, cosine to {train['min_lr_ratio']}× lr, weight decay {train['weight_decay']}, "
        f"clip {train['clip']}; init seed {train['seed']}, data seed {train['data_seed']}.",
        "- Depth curriculum: "
        + (
            f"min depth until step {train['curriculum_start']}, then +1 every {train['curriculum_every']} steps; "
            "each sequence at the current largest depth with probability 0.5, else uniform below it."
            + (f" This run reads it at step {train['data_offset']} + s." if train.get("data_offset") else "")
            if train["curriculum"]
            else "none."
        ),
        *_continued(info),
        f"- Wall time {training.get('wall_time_s', '?')} s on {training.get('hardware', '?')}; "
        f"code version {training.get('code_version', '?')}, torch {training.get('torch', '?')}."
        + (f" {training['code_version_note']}" if training.get("code_version_note") else ""),
        f"- Model: layers `{model['layers']}`, d = {model['d_model']}, {model['attn_heads']} attention heads, "
        f"{model['fw_heads']} fast-weight heads of K = V = {model['head_dim']}, rule `{model['rule']}`, MLP "
        f"{model['mlp_ratio']}×, conv {model['conv_size'] or 'none'}; {training.get('parameters', '?')} parameters.",
        f"- Sleep: window L = {sleep['window']}, feed `{sleep['feed']}`, norm between passes {sleep['norm_between']}, "
        f"pass embedding {sleep['pass_embedding']}, embedding norm {sleep['embed_norm']}.",
    ]
    if sleep["feed"] != "hidden" or sleep["pass_embedding"] or sleep["embed_norm"]:
        lines += [
            "- **Deviation from the paper's loop** (config options, saved here): each pass takes the window's "
            "RMS-normalised embeddings"
            + (
                " plus a learned gate times the RMS-normalised hidden states of the previous pass"
                if sleep["feed"] == "mix"
                else ""
            )
            + (" plus a learned pass embedding" if sleep["pass_embedding"] else "")
            + ". Without this input injection small models did not train at N > 1 (checkpoints/NOTES/rule110-mini.md,"
            " 'What was tried'); at N = 1 it only normalises the embeddings.",
        ]
    ev = info.get("eval")
    if ev:
        lines += [
            "",
            "## Evaluation",
            "",
            f"Held-out (test-split) examples, {ev['per_depth']} sequences per depth, seed {ev['seed']}; 95% "
            f"Wilson intervals. Reproduce: `sleepcore eval {name} --examples {ev['per_depth']} "
            f"--seed {ev['seed']}`.",
            "",
        ]
        exact = ev.get("exact", {})
        head = "| depth | accuracy per answer | answers |" + (" exact (whole sequence) | sequences |" if exact else "")
        lines += [head, "|---|---|---|" + ("---|---|" if exact else "")]
        for d, c in ev["answers"].items():
            row = f"| {d} | {c['acc']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}] | {c['n']} |"
            if exact:
                e = exact.get(d)
                row += f" {e['acc']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}] | {e['n']} |" if e else " — | |"
            lines.append(row)
    if sweep is not None:
        lines += _sweep_section(name, sweep, N, sleep.get("loop", "sleep"))
    lines += [
        "",
        "## Limits",
        "- A small model on a synthetic task, trained on 2 CPU cores: it shows the mechanism, not the paper's "
        "scale. Compare models of one task at matched optimizer steps (same data, same order); "
        "`checkpoints/RESULTS.md` puts them side by side.",
        "- Evaluated at the N it was trained with; "
        + (
            "the sweep above runs the same weights at other N."
            if sweep is not None
            else f"`sleepcore sweep {name}` evaluates the same weights at every test-time N."
        ),
    ]
    task = get_task(info["task"]["name"], **info["task"]["params"])
    if task.effective_depth_name:
        lines.append(
            f"- The depth above is nominal and can overstate what an answer needs; by {task.effective_depth_name} "
            f"(the depth it really needs: {task.effective_depth_about}) accuracy is in `checkpoints/RESULTS.md`, "
            "and the command above prints it."
        )
    if task.first_answer_about:
        lines.append(
            "- A later answer can lean on answers shown before it in the query window. Counting only "
            f"{task.first_answer_about}, accuracy is in `checkpoints/RESULTS.md`, and the command above prints it."
        )
    note = (notes or NOTES) / f"{info.get('preset', '')}.md"
    if info.get("preset") and note.is_file():
        lines += ["", "## Against the targets (all models of this preset)", "", note.read_text().strip()]
    return "\n".join(lines) + "\n"


def _sweep_section(name: str, sweep, trained: int, loop: str = "sleep") -> list[str]:
    """The card's table of the shipped sweep: one row per test-time P, by the count the task is judged on."""
    import polars as pl

    metric = headline_metric(sweep["metric"].unique().to_list(), sweep["task"][0])
    counted = sweep.filter(pl.col("metric") == metric)
    depths = sorted(counted["depth"].unique().to_list())
    cells = {(r["passes"], r["depth"]): r for r in counted.iter_rows(named=True)}
    where = "sleep passes per context window" if loop == "sleep" else "passes per window read out"
    lines = [
        "",
        "## Sleep at test time" if loop == "sleep" else "## Wake passes at test time",
        "",
        f"The same weights with P {where} instead of the N = {trained} they were trained "
        f"with, on the same held-out sequences for every P ({sweep['per_depth'][0]} per depth, seed "
        f"{sweep['eval_seed'][0]}); accuracy counted as: {counted['metric_label'][0]}; 95% Wilson intervals. "
        f"`sweep.parquet` beside this card holds every count; reproduce: `{sweep_command(name, sweep, trained)}`.",
        "",
        "| P | " + " | ".join(f"depth {d}" for d in depths) + " |",
        "|---|" + "---|" * len(depths),
    ]
    for p in sorted(counted["passes"].unique().to_list()):
        label = f"**{p}** (trained)" if p == trained else str(p)
        lines.append(f"| {label} | " + " | ".join(cell_text(cells.get((p, d))) for d in depths) + " |")
    return lines


def _continued(info: dict) -> list[str]:
    """The card's lines on a continued run: what it started from, and its steps and wall time in all."""
    base, train = info.get("continued_from"), info["train"]
    if not base:
        return []
    total_steps, total_wall, bases = _lineage(info)
    batches = f"batches {train['data_offset']}–{train['data_offset'] + train['steps'] - 1}"
    changed = base.get("task_changed")
    if changed:
        data = f"on {batches} of a changed task ({changes_text(changed)}; its base was trained on the left-hand values)"
    else:
        data = f"on {batches} of the same data stream, which its base never saw"
    return [
        f"- **Continued training**: it starts from the weights of `{base['name']}` (step {base.get('step')}, "
        f"model.safetensors SHA-256 `{base['sha256'][:16]}…`, trained by `{_relative(base.get('command') or '?')}`) "
        f"with a fresh optimizer and schedule, {data}. In all, with {_bases_text(bases)}: "
        f"{total_steps} optimizer steps and {total_wall:.0f} s of wall time; the numbers below are this run's own.",
    ]


def _lineage(info: dict) -> tuple[int, float, list[str]]:
    """A continued run's optimizer steps and wall time with every base it continues (a continuation of a
    continuation: gsm-chain-1w-c9 ← gsm-chain-1w-long ← gsm-chain-1w), and the bases' names, nearest first. Each base
    gives what its record says; a base's own base is read from the config.json shipped under its name, where the
    weights there are still the ones recorded (a base re-shipped with other weights ends the walk)."""
    steps, wall, names = info["train"]["steps"], info.get("training", {}).get("wall_time_s", 0), []
    base = info.get("continued_from")
    while base and base.get("name") not in names:
        names.append(base["name"])
        steps, wall = steps + (base.get("step") or 0), wall + (base.get("wall_time_s") or 0)
        try:
            folder = named(base["name"])
            if weights_sha256(folder) != base.get("sha256"):
                break
            base = read_info(folder).get("continued_from")
        except (CheckpointError, OSError):  # a base no longer shipped: what its continuation recorded is all there is
            break
    return steps, wall, names


def _bases_text(names: list[str]) -> str:
    return "its base" if len(names) == 1 else "its bases (" + " ← ".join(f"`{n}`" for n in names) + ")"


DERIVED = (SWEEP_FILE, "probes.parquet")  # tables computed from a checkpoint's weights, shipped beside them


def ship(run: str | Path, name: str, root: Path | None = None, replace: bool = False) -> Path:
    """Copy a finished run's model.safetensors and config.json into root/name (root: checkpoint_root(), the folder
    names are looked up in) and write its model card.

    A name that holds other weights is refused unless `replace`: then the tables computed from the old weights
    (`DERIVED`) are removed, saying so. The same weights again (a card rewritten) need no `replace`."""
    if not isinstance(name, str) or not _is_name(name):  # a name under root, never a path out of it
        raise ValueError(
            f"the checkpoint name must be letters, digits, '-', '_' and '.', not starting with '.'; got {name!r}"
        )
    root = checkpoint_root() if root is None else Path(root)
    run = Path(run)
    if not (run / "config.json").is_file():  # a path, never a checkpoint's name: read_info would look names up
        raise CheckpointError(f"{run} is not a training run (no config.json there); give the --out folder of a run")
    info = read_info(run)
    if not info.get("finished"):
        raise CheckpointError(f"{run} has not finished training (step {info.get('step')} of {info['train']['steps']})")
    load_checkpoint(run)  # validates weights against the config before anything is copied
    dest = root / name
    weights = dest / "model.safetensors"  # read as a file: dest may be a copy cut short, with no config.json
    other = weights.is_file() and file_sha256(weights) != file_sha256(run / "model.safetensors")
    if other and not replace:
        raise CheckpointError(
            f"{dest} already holds a checkpoint with other weights; give another --name, or --replace to put this "
            f"run there and remove the tables computed from the old weights ({', '.join(DERIVED)})"
        )
    dest.mkdir(parents=True, exist_ok=True)
    if other:
        for f in DERIVED:
            if (dest / f).is_file():
                (dest / f).unlink()
                print(f"removed {dest / f}: it was computed from the weights this ship replaces")
    for f in ("model.safetensors", "config.json"):
        atomic_write(dest / f, lambda tmp, f=f: shutil.copyfile(run / f, tmp))
    _write_card(dest, model_card(name, info, sweep=_sweep_of(dest)))
    return dest


def _sweep_of(folder: Path):
    try:
        return read_sweep(folder)
    except ValueError as e:
        raise CheckpointError(str(e)) from None


def _write_card(folder: Path, text: str) -> None:
    atomic_write(folder / "README.md", lambda tmp: Path(tmp).write_text(text))


def refresh_cards(root: Path | None = None) -> list[Path]:
    """Rewrite the model card of every checkpoint under root (checkpoint_root()) from its config.json (its preset's
    notes and its shipped sweep). All or nothing: every card is made before the first is written, so a config.json or
    sweep that cannot be used stops the refresh with every card as it was."""
    root = checkpoint_root() if root is None else Path(root)
    names = require_checkpoints(root)
    cards, problems = {}, []
    for name in names:
        try:
            cards[name] = model_card(name, read_info(root / name), sweep=_sweep_of(root / name))
        except ValueError as e:  # CheckpointError, and a config.json whose values do not make a card
            problems.append(f"{name}: {e}")
    if problems:
        raise CheckpointError("no card was rewritten: " + "; ".join(problems))
    for name in names:
        _write_card(root / name, cards[name])
    return [root / name / "README.md" for name in names]
