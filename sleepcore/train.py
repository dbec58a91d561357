"""Training: backprop through sleep, AdamW with warm-up and cosine decay, a curriculum over depth tied to the step.

Batch s is drawn from seed (data_seed, s) and the curriculum depends on s alone, so models that differ only in N
see identical data in identical order, and a resumed run continues to exactly the weights of an unbroken one.
A continued run (init_from, a shipped checkpoint) starts from that model's weights with a fresh optimizer and
schedule, and draws batch s at data_offset + s, so it sees data its base never saw.

Data parallel (docs/SCALING.md): under torchrun (WORLD_SIZE > 1) every rank builds the same global batch s and
trains on its strided shard, examples rank::world; the loss is scaled so that DDP's averaged gradient is the
gradient of the global batch's mean loss. Rank 0 alone evaluates and writes; a checkpoint holds nothing per rank,
so it resumes under any number of processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from sleepcore.checkpoint import (
    CheckpointError,
    check_tensors,
    checkpoint_info,
    configs_from,
    file_sha256,
    load_optimizer,
    read_info,
    read_trainer,
    save_optimizer,
    save_tensors,
    write_json,
)
from sleepcore.config import ModelConfig, SleepConfig, TaskConfig, TrainConfig, check_together, cores
from sleepcore.data import collate
from sleepcore.evaluate import evaluate, sample_eval
from sleepcore.model import SleepModel
from sleepcore.presets import SECTIONS
from sleepcore.recorder import NULL
from sleepcore.tasks import changed_task, get_task

EVAL_SEED = 777  # evaluation examples come from the test split with this seed, the same for every model
HASHED = ("model.safetensors", "optimizer.safetensors")  # trainer.json records their SHA-256: a resume checks them


def curriculum_depth(step: int, cfg: TrainConfig, task) -> int | None:
    """The largest depth trained at this step: min_depth until curriculum_start, then +1 every curriculum_every."""
    if not cfg.curriculum:
        return None
    step += cfg.data_offset
    if step < cfg.curriculum_start:
        return task.min_depth
    return min(task.max_depth, task.min_depth + 1 + (step - cfg.curriculum_start) // cfg.curriculum_every)


def batch_at(step: int, cfg: TrainConfig, task) -> list:
    return task.sample(
        cfg.batch_size,
        seed=cfg.data_seed * 1_000_003 + cfg.data_offset + step,
        split="train",
        max_depth=curriculum_depth(step, cfg, task),
    )


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def loss_and_accuracy(model, batch, rec=NULL) -> tuple[torch.Tensor, float]:
    logits = model(batch["tokens"], batch["loss_mask"], rec=rec).logits
    mask = batch["loss_mask"]
    scored, targets = logits[mask], batch["targets"][mask]
    acc = (scored.argmax(-1) == targets).float().mean().item()
    return F.cross_entropy(scored, targets), acc


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel group."""

    rank: int
    world: int
    local_rank: int


def init_distributed() -> Ranks | None:
    """Join the group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT); None for one process.

    gloo on the CPU, nccl on GPUs (one per LOCAL_RANK). The group is started once and left open, so that several
    train() calls in one process share it (starting it again after destroying it can hang under torchrun);
    `main` closes it.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), local)


def sharded_loss_and_accuracy(model, batch, world: int) -> tuple[torch.Tensor, float, float]:
    """(loss to backpropagate, global mean loss, global accuracy) for this rank's shard of the global batch.

    The loss is (sum of CE over local scored positions) · world / (scored positions in the global batch): DDP
    averages gradients over ranks, so the result is the gradient of the global batch's mean CE, however the
    scored positions fall across shards. Every task has a fixed layout, so each shard sleeps on the same windows
    as the whole batch would.
    """
    logits = model(batch["tokens"], batch["loss_mask"]).logits
    mask = batch["loss_mask"]
    scored, targets = logits[mask], batch["targets"][mask]
    ce = F.cross_entropy(scored, targets, reduction="sum")
    correct = (scored.argmax(-1) == targets).sum().to(ce.dtype)
    stats = torch.stack([ce.detach(), correct, ce.new_tensor(float(targets.numel()))])  # summed over ranks below
    dist.all_reduce(stats)
    total, right, count = stats.tolist()
    return ce * world / count, total / count, right / count


def code_version() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "sleepcore"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)"


def train(
    out: str | Path,
    model_cfg: ModelConfig,
    sleep_cfg: SleepConfig,
    task_cfg: TaskConfig,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    extra: dict | None = None,
    progress: bool = True,
    eval_per_depth: int = 250,
) -> dict:
    """Train into folder `out` and return its config.json contents. stop_after ends early (as a kill would).

    A folder that already holds a run is continued with resume=True and never overwritten otherwise.
    """
    out = Path(out)
    for c in (model_cfg, sleep_cfg, task_cfg, cfg):
        c.validate()
    check_together(model_cfg, sleep_cfg, task_cfg)
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after < 1):
        raise ValueError(f"stop_after (--stop-after) must be a step >= 1; got {stop_after!r}")
    check_run_folder(out, resume, stop_after)
    if resume and (done := _finished(out, (model_cfg, sleep_cfg, task_cfg, cfg))) is not None:
        if os.environ.get("RANK", "0") == "0":  # one line, not one per torchrun worker
            print(f"{out} finished at step {done['step']}: nothing to resume (its files are left as they are)")
        return done  # training on would evaluate it again and add that time to its wall time
    torch.set_num_threads(min(cfg.threads, cores()))  # a config from a bigger machine runs on this one's cores
    ranks = init_distributed()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if ranks is not None and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
    if ranks is not None and cfg.batch_size < ranks.world:
        raise ValueError(f"batch_size={cfg.batch_size} is smaller than the {ranks.world} processes sharing it")
    lead = ranks is None or ranks.rank == 0  # the one process that evaluates, logs and writes
    task = get_task(task_cfg.name, **task_cfg.params)
    torch.manual_seed(cfg.seed)
    model = SleepModel(model_cfg, sleep_cfg).to(device)
    opt = make_optimizer(model, cfg)
    start, history, wall, tokens_seen = 0, [], 0.0, 0
    version = code_version()  # the code this run starts from; a resumed run keeps the version it started with
    if resume:  # check_run_folder found its trainer.json, and a stop_after still ahead of it
        trainer = _restore(out, model, opt, (model_cfg, sleep_cfg, task_cfg, cfg), device, note=lead)
        start, history, wall, tokens_seen = (trainer[k] for k in ("step", "history", "wall_s", "tokens"))
        version = trainer.get("code_version", version)
    if cfg.init_from is not None and start > 0:  # a resumed continuation holds its own weights and its base's record
        extra = {**(extra or {}), "continued_from": read_info(out)["continued_from"]}
    elif cfg.init_from is not None:
        weights, record = _base(cfg.init_from, (model_cfg, sleep_cfg, task_cfg), device)
        model.load_state_dict(weights)
        extra = {**(extra or {}), "continued_from": record}
    if ranks is None:
        net = model
    else:  # some parameters sit out every step (between_norm at N = 1; pass parameters in attn-only): find them
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
    eval_examples = sample_eval(task, max(1, cfg.eval_examples // len(task.depths)), EVAL_SEED)
    info = {}
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    show = progress and lead
    bar = tqdm(total=cfg.steps, initial=start, disable=not show, dynamic_ncols=True, desc=f"N={sleep_cfg.passes}")
    t0 = time.perf_counter() - wall
    for step in range(start, end):
        model.train()
        examples = batch_at(step, cfg, task)  # the global batch; a rank keeps its shard
        batch = collate(examples if ranks is None else examples[ranks.rank :: ranks.world], device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        if ranks is None:
            loss, acc = loss_and_accuracy(net, batch)
            shown = loss.item()
        else:
            loss, shown, acc = sharded_loss_and_accuracy(net, batch, ranks.world)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        tokens_seen += len(examples) * batch["tokens"].shape[1]
        done = step + 1
        elapsed = time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(
            loss=f"{shown:.3f}",
            acc=f"{acc:.3f}",
            depth=curriculum_depth(step, cfg, task),
            tok_s=f"{tokens_seen / max(elapsed, 1e-9):.0f}",
        )
        evaluating, saving = done % cfg.eval_every == 0 or done == cfg.steps, done % cfg.save_every == 0 or done == end
        if evaluating and lead:
            res = evaluate(model, task, eval_examples)
            history.append(
                {
                    "step": done,
                    "loss": round(shown, 5),
                    "train_acc": round(acc, 4),
                    "eval": {d: round(c["acc"], 4) for d, c in res.as_dict()["answers"].items()},
                    "wall_s": round(elapsed, 1),
                }
            )
            bar.write(json.dumps(history[-1]))
        if saving and lead:
            info = _save(
                out,
                model,
                opt,
                (model_cfg, sleep_cfg, task_cfg, cfg),
                done,
                history,
                elapsed,
                tokens_seen,
                device,
                extra,
                final=False,
                world=1 if ranks is None else ranks.world,
                version=version,
            )
        if ranks is not None and (evaluating or saving):
            dist.barrier()  # the other ranks wait while rank 0 evaluates and writes
    bar.close()
    if end == cfg.steps and lead:  # finished: the full held-out evaluation goes into config.json
        result = evaluate(model, task, sample_eval(task, eval_per_depth, EVAL_SEED))
        info = _save(
            out,
            model,
            opt,
            (model_cfg, sleep_cfg, task_cfg, cfg),
            end,
            history,
            time.perf_counter() - t0,
            tokens_seen,
            device,
            extra,
            final=True,
            result=result.as_dict(),
            eval_per_depth=eval_per_depth,
            world=1 if ranks is None else ranks.world,
            version=version,
        )
    if ranks is not None:
        dist.barrier()  # nobody returns before the checkpoint is complete
    return info


def _save(
    out,
    model,
    opt,
    configs,
    step,
    history,
    wall,
    tokens,
    device,
    extra,
    final,
    result=None,
    eval_per_depth=None,
    world: int = 1,
    version: str = "unknown",
) -> dict:
    # Two phases, so that a killed process leaves a run that resumes exactly at any moment: the new weights and
    # optimizer state go to *.next files; trainer.json, naming their SHA-256 and holding the configs, commits the save;
    # then they replace the old files, and config.json comes last. A resume uses, for each file, whichever of the two
    # trainer.json names (_committed); a save first finishes a commit that was cut off (_finish_commit), so its own
    # .next files never overwrite the only copy of the files trainer.json names.
    _finish_commit(out)
    info = checkpoint_info(
        *configs,
        **(extra or {}),
        step=step,
        finished=final,
        training={
            "tokens": tokens,
            "wall_time_s": round(wall, 1),
            "hardware": hardware(device) + (f" × {world} processes" if world > 1 else ""),
            "code_version": version,
            "torch": torch.__version__,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        history=history,
    )
    if result is not None:
        info["eval"] = {"split": "test", "seed": EVAL_SEED, "per_depth": eval_per_depth, **result}
    save_tensors(_next(out, "model.safetensors"), model.state_dict())
    groups = save_optimizer(_next(out, "optimizer.safetensors"), opt)
    trainer = {
        "step": step,
        "history": history,
        "wall_s": wall,
        "tokens": tokens,
        "param_groups": groups,
        "code_version": version,
        "sha256": {name: file_sha256(_next(out, name)) for name in HASHED},
        "configs": {section: info[section] for section in SECTIONS},  # a first save cut off before config.json
    }
    write_json(out / "trainer.json", trainer)
    for name in HASHED:
        os.replace(_next(out, name), out / name)
    write_json(out / "config.json", info)
    return info


def _finish_commit(out: Path) -> None:
    """Finish a save cut off after its trainer.json: each .next file trainer.json recorded takes its name. (A .next
    file it did not record is an uncommitted save's, and the next write replaces it.)"""
    pending = [name for name in HASHED if _next(out, name).is_file()]  # none after every save that finished
    if not pending or not (out / "trainer.json").is_file():
        return
    hashes = read_trainer(out / "trainer.json").get("sha256", {})
    for name in pending:
        if file_sha256(_next(out, name)) == hashes.get(name):
            os.replace(_next(out, name), out / name)


def _next(out: Path, name: str) -> Path:
    """Where _save writes `name` before trainer.json commits it."""
    return out / f"{name}.next"


def _committed(out: Path, trainer: dict, name: str, cut: str) -> tuple[Path, bool]:
    """The copy of `name` that trainer.json was saved with: the file itself, or its .next copy when a save was cut
    off after trainer.json and before the rename (then True: the note is the caller's). CheckpointError if neither."""
    want = trainer["sha256"].get(name)
    if (out / name).is_file() and file_sha256(out / name) == want:
        return out / name, False
    if _next(out, name).is_file() and file_sha256(_next(out, name)) == want:
        return _next(out, name), True
    raise CheckpointError(
        f"--resume: {out / name} is not the file trainer.json was saved with at step {trainer['step']} (its SHA-256 "
        f"differs: {cut}); the run cannot continue exactly: start it again with a new --out"
    )


def check_run_folder(out: str | Path, resume: bool, stop_after: int | None = None) -> None:
    """Before anything runs (in `train`, and in `sleepcore train --nproc` before its workers start): CheckpointError
    for a folder that holds a run without resume (it is never overwritten) or for resume of a folder that holds none;
    ValueError for a stop_after the run to resume has already reached."""
    out = Path(out)
    if (out / "config.json").exists() and not (out / "trainer.json").exists():  # a shipped checkpoint, say
        raise CheckpointError(
            f"{out} holds a checkpoint ({_held(out)}) but no trainer.json, so it cannot be resumed, and it is never "
            "overwritten; give a new --out (a new run can start from its weights with --set train.init_from=NAME, "
            "NAME a checkpoint under checkpoints/)"
        )
    if not resume and (out / "trainer.json").exists():
        raise CheckpointError(
            f"{out} already holds a run ({_held(out)}); pass --resume to continue it, or give a new --out "
            "(nothing was written)"
        )
    if not resume and (clash := [n for n in HASHED if (out / n).exists()]):
        raise CheckpointError(
            f"{out} holds {' and '.join(clash)} but no run (no trainer.json or config.json): a new run would "
            "overwrite it; give a new --out (nothing was written)"
        )
    if resume and not (out / "trainer.json").exists():
        raise CheckpointError(f"--resume: {out} holds no trainer.json to resume from")
    if (
        resume
        and stop_after is not None
        and stop_after <= (step := read_trainer(out / "trainer.json")["step"])
        and not _is_finished(out)  # a finished run: resuming it is a no-op (train), whatever --stop-after says
    ):
        raise ValueError(
            f"--stop-after {stop_after}: the run in {out} is already at step {step}, so there is nothing to train; "
            "give a later step, or no --stop-after to finish it"
        )


def _finished(out: Path, configs) -> dict | None:
    """The config.json of the run in `out` if it finished with these configs (threads aside), else None: a run cut
    off, or one of other configs, which _restore then refuses."""
    if not _is_finished(out):
        return None
    info = read_info(out)
    return info if _same_threads(configs_from(info)) == _same_threads(configs) else None


def _same_threads(configs) -> tuple:
    """The four configs, threads left out of the train config: how many CPU threads ran a run is the machine's
    business, so a run resumes on another machine with its own count (its config.json records the first)."""
    *rest, train_cfg = configs
    return (*rest, dataclasses.replace(train_cfg, threads=1))


def _is_finished(out: Path) -> bool:
    """Whether the run in `out` finished (its config.json says so, at trainer.json's step), whatever its configs."""
    try:
        info, trainer = read_info(out), read_trainer(out / "trainer.json")
    except (CheckpointError, OSError):
        return False
    return info.get("finished") is True and info.get("step") == trainer.get("step")


def _held(out: Path) -> str:
    """The step of the run in `out`, in words, read from trainer.json else config.json, whatever state they are in."""
    for name in ("trainer.json", "config.json"):
        try:
            step = json.loads((out / name).read_text()).get("step")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(step, int):
            return f"at step {step}"
    return "its step cannot be read"


def _differences(there, here) -> str:
    """What differs between two configs of one section, as `key: there → here`."""
    a, b = dataclasses.asdict(there), dataclasses.asdict(here)
    keys = [k for k in a if a[k] != b.get(k)]
    return ", ".join(f"{k}: {a[k]!r} there, {b.get(k)!r} here" for k in keys)


def _restore(out, model, opt, configs, device, note: bool = True) -> dict:
    """Load the run in `out` into model and opt; its trainer.json. CheckpointError unless its config is this run's
    and its files were saved together: config.json at trainer.json's step, model and optimizer with the SHA-256
    trainer.json recorded (a run saved before hashes were recorded resumes unchecked, with a note)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    trainer = read_trainer(out / "trainer.json")
    has_config = (out / "config.json").is_file()
    missing = [] if has_config or "configs" in trainer else ["config.json"]
    missing += [name for name in HASHED if not ((out / name).is_file() or _next(out, name).is_file())]
    if missing:
        raise CheckpointError(f"--resume: {out} has no {' or '.join(missing)}; it cannot continue: use a new --out")
    # the configs trainer.json committed (config.json's where it was saved before trainer.json held them)
    saved = read_info(out) if has_config else {"step": None}
    held = trainer["configs"] if "configs" in trainer else saved
    for name, mine, theirs in zip(SECTIONS, _same_threads(configs), _same_threads(configs_from(held))):
        if mine != theirs:
            raise CheckpointError(
                f"--resume: the {name} config in {out} differs from this run's ({_differences(theirs, mine)}); "
                "use a new --out, or the run's own settings"
            )
    step, cut = trainer["step"], "a save was cut off part-way, or a file was copied in"
    if step > configs[3].steps:  # no save of this run is past its last step: the file was edited, or is another's
        raise CheckpointError(
            f"--resume: {out / 'trainer.json'} is at step {step}, past this run's last step ({configs[3].steps}); "
            "it is not this run's save: start it again with a new --out"
        )
    # _save writes config.json after trainer.json: a kill between them leaves config.json one save behind files that
    # belong together (trainer.json's hashes say so), or none after a first save; the next save writes it.
    behind = not has_config or (isinstance(saved.get("step"), int) and saved["step"] < step)
    if saved.get("step") != step and not behind:
        raise CheckpointError(
            f"--resume: {out / 'config.json'} is at step {saved.get('step')} but trainer.json at step {step} "
            f"({cut}); the run cannot continue exactly: start it again with a new --out"
        )
    if behind and note:
        where = f"is at step {saved['step']}, one save behind" if has_config else "was not written yet by the save of"
        print(
            f"note: {out / 'config.json'} {where} trainer.json's {step} (a save was cut off before its last file); "
            "resuming from trainer.json's step, and the next save writes it",
            file=sys.stderr,
        )
    if "sha256" not in trainer:
        if note:
            print(
                f"note: {out / 'trainer.json'} was saved before runs recorded their files' SHA-256, so "
                f"{' and '.join(HASHED)} cannot be checked to be step {step}'s; resuming without that check",
                file=sys.stderr,
            )
    files = {name: out / name for name in HASHED}
    if "sha256" in trainer:
        found = {name: _committed(out, trainer, name, cut) for name in HASHED}
        files = {name: path for name, (path, _) in found.items()}
        if note and any(late for _, late in found.values()):
            print(
                f"note: a save was cut off after {out / 'trainer.json'} recorded step {step}, before its files took "
                "their names; resuming from the .next files it recorded, and the next save renames them",
                file=sys.stderr,
            )
    try:
        tensors = load_file(files["model.safetensors"], device=str(device))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{files['model.safetensors']} cannot be read as safetensors: {e}") from None
    check_tensors(model.state_dict(), tensors, files["model.safetensors"])
    model.load_state_dict(tensors)
    load_optimizer(files["optimizer.safetensors"], opt, trainer["param_groups"])
    return trainer


def _base(name: str, configs, device) -> tuple[dict, dict]:
    """The weights a continued run starts from, the checkpoint called `name` (checkpoint.named), checked to share
    this run's model and sleep configs and its task, and its record for the new config.json: step, tokens, wall
    time, command, SHA-256, and, where the task's settings changed (a curriculum: gsm-chain-1w-c9 widens the
    constants of gsm-chain-1w), what changed, as {setting: [there, here]}."""
    from sleepcore import checkpoint as ckpt

    try:
        folder = ckpt.named(name)
    except CheckpointError as e:
        raise CheckpointError(f"init_from: {e}") from None
    base, info = ckpt.load_checkpoint(folder, device)
    model_cfg, sleep_cfg, task_cfg = configs
    their_model, their_sleep, their_task = ckpt.configs_from(info)[:3]
    for section, mine, theirs in (("model", model_cfg, their_model), ("sleep", sleep_cfg, their_sleep)):
        if mine != theirs:
            raise CheckpointError(
                f"init_from: {name}'s {section} config differs from this run's ({_differences(theirs, mine)}), "
                "so its weights cannot continue here"
            )
    if task_cfg.name != their_task.name:
        raise CheckpointError(
            f"init_from: {name} was trained on task {their_task.name!r}, this run is {task_cfg.name!r}; "
            "a continued run keeps its task (its settings may change)"
        )
    try:  # the same tokens at the same ids, and the same window: else the weights would read other things
        _, changed = changed_task(their_task.name, their_task.params, task_cfg.params)
    except ValueError as e:
        raise CheckpointError(f"init_from: {name}'s weights cannot continue on this run's task: {e}") from None
    training = info.get("training", {})
    record = {
        "name": name,
        "sha256": ckpt.weights_sha256(folder),
        "step": info.get("step"),
        "tokens": training.get("tokens"),
        "wall_time_s": training.get("wall_time_s"),
        "command": info.get("command"),
    }
    if changed:
        record["task_changed"] = changed
    return base.state_dict(), record


def launch(nproc: int, args: list[str]) -> int:
    """Run `python -m sleepcore.train ARGS` in nproc processes on this machine through torchrun; its exit status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run([*cmd, "-m", "sleepcore.train", *args], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    """`python -m sleepcore.train ARGS` is `sleepcore train ARGS`: the entry point torchrun starts on every rank."""
    from sleepcore.cli import main as cli_main

    try:
        return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
