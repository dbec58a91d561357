"""Checkpoints: model.safetensors (weights only, never pickle) + config.json; written atomically, validated on load.

A training directory also holds optimizer.safetensors + trainer.json so `--resume` can continue exactly; trainer.json
records the SHA-256 of the model and optimizer files saved with it, so a resume can tell when they do not belong
together (a save cut off part-way, a file copied in).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sleepcore.config import ModelConfig, SleepConfig, TaskConfig, TrainConfig, check_together, from_dict, to_dict

FORMAT = 1
TRAINER_KEYS = ("step", "history", "wall_s", "tokens", "param_groups")  # what every trainer.json holds
CHECKPOINT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"  # the repository's shipped checkpoints
ROOT_ENV = "SLEEPCORE_CHECKPOINTS"  # names another folder to take checkpoint names from (the app, figures, CLI)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a message saying what is wrong."""


def check_out(path: str | Path, flag: str = "--out", folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before any computing: a file path that is a folder (or a
    folder that is a file), or one below a file or a folder where no file can be made. Missing folders are fine:
    writes make them. The test is real: a temporary file is made and removed where the write will make its own
    (atomic_write writes through one), since os.access trusts permission bits that root passes everywhere
    (/proc, a read-only mount)."""
    if str(path).strip() == "":
        raise ValueError(f"{flag} is empty; give a {'folder' if folder else 'file'} path")
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
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sleepcore-check.", dir=above)
    except OSError as e:
        raise ValueError(
            f"{flag} {path}: no file can be made in the folder {above} ({e.strerror}); give a path in a writable folder"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the final file gets ordinary permissions
        _fsync(tmp)  # on disk before its name is: a crash of the machine never leaves a named, empty file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)  # the rename itself


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # a filesystem or folder that cannot be synced: the rename is still atomic for a killed process
        pass
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")

    atomic_write(path, write)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write(path, lambda tmp: save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp))


def configs_from(info: dict) -> tuple[ModelConfig, SleepConfig, TaskConfig, TrainConfig]:
    try:
        configs = (
            from_dict(ModelConfig, info["model"]),
            from_dict(SleepConfig, info["sleep"]),
            from_dict(TaskConfig, info["task"]),
            from_dict(TrainConfig, info["train"]),
        )
        check_together(*configs[:3])
        return configs
    except KeyError as e:
        raise CheckpointError(
            f"config.json has no {e.args[0]!r} section; it needs model, sleep, task and train"
        ) from None
    except ValueError as e:
        raise CheckpointError(f"config.json is not valid: {e}") from None


def checkpoint_root() -> Path:
    """The folder checkpoints are named in: $SLEEPCORE_CHECKPOINTS where set, else the repository's checkpoints/
    (CHECKPOINT_ROOT). Read at every call: the names commands take, `eval --all`, the figure set and the app all
    come from here, and `ship` writes there. A continued run's `train.init_from` is found by `named`."""
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else CHECKPOINT_ROOT


def resolve(name_or_path: str | Path) -> Path:
    """A checkpoint folder by path, or by name (`named`)."""
    text = str(name_or_path)
    if not text.strip():
        raise CheckpointError("no checkpoint given (an empty name): give a checkpoint's name or folder")
    p = Path(name_or_path)
    if (p / "config.json").exists():
        return p
    found, roots, where = _lookup(text)
    if found is None:
        raise CheckpointError(
            f"no checkpoint at {text!r} (no config.json there, nor in a folder of that name under "
            f"{' or '.join(map(str, roots))}); {where}"
        )
    return found


def named(name: str) -> Path:
    """The checkpoint folder called `name`: under checkpoint_root(), then among the repository's shipped checkpoints
    (CHECKPOINT_ROOT) where $SLEEPCORE_CHECKPOINTS names another folder. A name is one folder name, never a path."""
    found, roots, where = _lookup(name)
    if found is None:
        raise CheckpointError(f"no checkpoint named {name!r} under {' or '.join(map(str, roots))}; {where}")
    return found


def _lookup(name: str) -> tuple[Path | None, list[Path], str]:
    """(the folder called `name` or None, the folders searched, what they hold, for a message)."""
    root, shipped = checkpoint_root(), CHECKPOINT_ROOT
    roots = [root] if root == shipped else [root, shipped]
    p = Path(name)
    if len(p.parts) == 1 and not p.is_absolute() and p.parts[0] != "..":  # never a path out of the root
        for r in roots:
            if (r / p / "config.json").exists():
                return r / p, roots, ""
    where = [f"checkpoints in ${ROOT_ENV} ({root}): {', '.join(available(root)) or 'none'}"] if root != shipped else []
    where.append(f"shipped checkpoints: {', '.join(available(shipped)) or 'none'}")
    names = sorted({n for r in roots for n in available(r)})
    if close := difflib.get_close_matches(p.name, names, n=3, cutoff=0.75):  # a typo: the nearest names first
        where.insert(0, f"did you mean {' or '.join(close)}?")
    return None, roots, "; ".join(where)


def available(root: Path | None = None) -> list[str]:
    """Names of the checkpoints under root (default: the repository's checkpoints/, CHECKPOINT_ROOT): folders
    holding both config.json and model.safetensors."""
    root = Path(CHECKPOINT_ROOT if root is None else root)
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file()
    )


def require_checkpoints(root: Path) -> list[str]:
    """available(root), refused when there are none: a command over every checkpoint (eval --all, the card refresh,
    the figure set) must not write an empty result over a real one because $SLEEPCORE_CHECKPOINTS had a typo."""
    names = available(root)
    if names:
        return names
    where = f"the checkpoints folder {root}" + (f" (${ROOT_ENV})" if os.environ.get(ROOT_ENV) else "")
    if not Path(root).exists():
        raise CheckpointError(f"{where} does not exist; give a folder of checkpoints")
    if not Path(root).is_dir():
        raise CheckpointError(f"{where} is a file, not a folder of checkpoints")
    raise CheckpointError(
        f"{where} holds no checkpoint (a folder with config.json and model.safetensors); "
        "put one there with `sleepcore ship RUN --name NAME`"
    )


def weights_sha256(path: str | Path) -> str:
    """SHA-256 of a checkpoint's model.safetensors (hex): names the exact weights a result or a run came from."""
    return file_sha256(resolve(path) / "model.safetensors")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_trainer(path: Path) -> dict:
    """A run's trainer.json, checked to hold what a resume needs (TRAINER_KEYS; `sha256` where saved with it)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {json_problem(e)}") from None
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read: {e.strerror or e}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object; got {type(data).__name__}")
    missing = [k for k in TRAINER_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{path} is missing {missing}; a trainer.json holds {', '.join(TRAINER_KEYS)}")
    step, groups, hashes = data["step"], data["param_groups"], data.get("sha256", {})
    problems = [
        (isinstance(step, int) and not isinstance(step, bool) and step >= 0, f"step must be an int >= 0; got {step!r}"),
        (isinstance(data["history"], list), "history must be a list"),
        (isinstance(data["wall_s"], (int, float)), f"wall_s must be a number; got {data['wall_s']!r}"),
        (isinstance(data["tokens"], int), f"tokens must be an int; got {data['tokens']!r}"),
        (
            isinstance(groups, list) and all(isinstance(g, dict) for g in groups),
            "param_groups must be a list of objects",
        ),
        (isinstance(hashes, dict), "sha256 must be an object: file name -> SHA-256"),
    ]
    for ok, problem in problems:
        if not ok:
            raise CheckpointError(f"{path} is not valid: {problem}")
    return data


def json_problem(e: json.JSONDecodeError | UnicodeDecodeError) -> str:
    """What is wrong with a file that is not JSON, in words: its line and column, or where it stops being UTF-8."""
    if isinstance(e, UnicodeDecodeError):
        return f"it is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
    return str(e)


def read_info(path: str | Path) -> dict:
    path = resolve(path)
    config = path / "config.json"
    try:
        info = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config} is not valid JSON: {json_problem(e)}") from None
    except OSError as e:
        raise CheckpointError(f"{config} cannot be read: {e.strerror or e}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'config.json'} is not a sleepcore checkpoint config (format {FORMAT})")
    return info


def checked_info(info: dict) -> dict:
    """config.json's `info` with its model, sleep, task and train sections checked (configs_from) and written out in
    full: a setting an older (or hand-edited) file lacks takes its default there, as it does in the model built from
    it, so code reading info["sleep"]["passes"] sees what the model runs with. CheckpointError as configs_from."""
    return {**info, **{k: v for k, v in checkpoint_info(*configs_from(info)).items() if k != "format"}}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Load (model, info). Validates the config and every tensor's name, shape, dtype and values (finite) against the
    model it describes; `info` is checked_info's: every setting there, defaults included."""
    from sleepcore.model import SleepModel

    path = resolve(path)
    info = checked_info(read_info(path))
    model_cfg, sleep_cfg, _, _ = configs_from(info)
    model = SleepModel(model_cfg, sleep_cfg)
    try:
        tensors = load_file(path / "model.safetensors")
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path / 'model.safetensors'} cannot be read as safetensors: {e}") from None
    check_tensors(model.state_dict(), tensors, path / "model.safetensors")
    model.load_state_dict(tensors)
    return model.to(device).eval(), info


def check_tensors(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], where) -> None:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    misshapen = [
        f"{k}: {tuple(got[k].shape)} but the config needs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in got and got[k].shape != v.shape
    ]
    mistyped = [
        f"{k}: {got[k].dtype} but the model holds {v.dtype}"
        for k, v in expected.items()
        if k in got and got[k].dtype != v.dtype
    ]
    nonfinite = sorted(k for k, t in got.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    problems = []
    if missing:
        problems.append(f"missing tensors {missing[:6]}{' …' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected[:6]}{' …' if len(unexpected) > 6 else ''}")
    if misshapen:
        problems.append("wrong shapes: " + "; ".join(misshapen[:6]))
    if mistyped:
        problems.append("wrong dtypes: " + "; ".join(mistyped[:6]))
    if problems:
        raise CheckpointError(f"{where} does not match its config.json: " + ", ".join(problems))
    if nonfinite:  # the file fits its config, but its values are unusable
        raise CheckpointError(
            f"{where} holds NaN or infinite values in {nonfinite[:6]}{' …' if len(nonfinite) > 6 else ''}: these "
            "weights cannot be run (a training run that diverged, or a damaged copy)"
        )


def checkpoint_info(model_cfg, sleep_cfg, task_cfg, train_cfg, **extra) -> dict:
    return {
        "format": FORMAT,
        "model": to_dict(model_cfg),
        "sleep": to_dict(sleep_cfg),
        "task": to_dict(task_cfg),
        "train": to_dict(train_cfg),
        **extra,
    }


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    """AdamW state as safetensors; returns the JSON-able param_groups to store beside it."""
    sd = optimizer.state_dict()
    tensors = {f"{i}.{name}": t for i, st in sd["state"].items() for name, t in st.items()}
    save_tensors(path, tensors)
    return sd["param_groups"]


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, param_groups: list[dict]) -> None:
    """Restore AdamW state saved by save_optimizer; CheckpointError naming the file if it does not fit `optimizer`."""
    try:
        flat = load_file(path)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} cannot be read as safetensors: {e}") from None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in flat.items():
        i, dot, name = key.partition(".")
        if not (dot and i.isdigit() and int(i) < len(params)):
            raise CheckpointError(f"{path} has tensor {key!r}; expected INDEX.NAME for {len(params)} parameters")
        if name != "step" and t.shape != params[int(i)].shape:
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(t.shape)} but parameter {i} has {tuple(params[int(i)].shape)}"
            )
        state.setdefault(int(i), {})[name] = t
    try:
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{path} and its trainer.json param_groups do not fit this model's optimizer: {e}"
        ) from None
