"""Traces: what a sleep model does on K examples, recorded once and written as a folder (docs/TRACE_SCHEMA.md).

A trace holds the record points the views need (fast-weight state S per window, pass and layer; attention
probabilities; wake-window logits) in tensors.safetensors, and tidy polars tables: tokens, state norms and their
change between passes, residual-stream norms, and the anytime readout (the answer after waking at pass n).
Writing is atomic per file with meta.json last, holding every other file's sha256; loading checks them all.

Letters as in sleepcore/model.py: K examples (the batch) · H heads · L window · N passes · T sequence length.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from sleepcore.checkpoint import (
    atomic_write,
    check_out,
    json_problem,
    load_checkpoint,
    resolve,
    weights_sha256,
    write_json,
)
from sleepcore.config import check_seed
from sleepcore.data import collate
from sleepcore.recorder import Recorder
from sleepcore.results import task_for
from sleepcore.tasks import Example, Task, split_of

FORMAT = 1
META = "meta.json"
WRITING = ".trace-writing.json"  # there while write_trace writes: marks a folder it may write into again
TENSORS = "tensors.safetensors"
TABLES = ("tokens", "state", "hidden", "anytime")
# What goes into tensors.safetensors by default: what the views read. Per-layer hidden states are recorded too,
# always, but only their norms are kept (hidden.parquet); storing them would multiply the size by D / L.
DEFAULT_POINTS = ("*/fw.state", "*/attn.probs", "window.*/logits")
_TABLE_POINTS = ("*/fw.state", "*/hidden")  # recorded whatever `include` says: the tables are built from them
_PARQUET = dict(compression="zstd", compression_level=3, statistics=True, row_group_size=1 << 20)

I32, F64, STR, BOOL = pl.Int32, pl.Float64, pl.String, pl.Boolean
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "tokens": {
        "example": I32,
        "position": I32,
        "window": I32,
        "kind": STR,
        "token_id": I32,
        "token": STR,
        "scored": BOOL,
        "target": I32,
        "target_token": STR,
        "depth": I32,
    },
    "state": {
        "example": I32,
        "window": I32,
        "pass": I32,
        "layer": I32,
        "head": I32,
        "norm": F64,
        "delta": F64,
        "rel_delta": F64,
    },
    "hidden": {"example": I32, "window": I32, "pass": I32, "layer": I32, "position": I32, "norm": F64},
    "anytime": {
        "example": I32,
        "position": I32,
        "depth": I32,
        "n": I32,
        "target": I32,
        "target_token": STR,
        "predicted": I32,
        "predicted_token": STR,
        "p_target": F64,
        "p_predicted": F64,
        "correct": BOOL,
    },
}
KEYS = {
    "tokens": ["example", "position"],
    "state": ["example", "window", "pass", "layer", "head"],
    "hidden": ["example", "window", "pass", "layer", "position"],
    "anytime": ["example", "position", "n"],
}


class TraceError(ValueError):
    """A trace folder that cannot be used, with a message naming the file and what is wrong with it."""


class TraceKeyError(KeyError):
    """A tensor a trace does not hold; its message (shown without KeyError's quotes) says which ones it does."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_POINT = re.compile(r"window\.(\d+)/pass\.(\d+)/layer\.(\d+)/(fw\.state|attn\.probs)")
_LOGITS = re.compile(r"window\.(\d+)/logits")


def _ints(values: list[int]) -> str:
    """Sorted integers in words: "1–4" for a run, "0, 2, 5" otherwise."""
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return ", ".join(map(str, values))


@dataclass
class Trace:
    meta: dict
    tensors: dict[str, torch.Tensor]  # record point name -> float32 CPU tensor, batch dimension = the K examples
    tables: dict[str, pl.DataFrame]  # tokens, state, hidden, anytime

    def tensor(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise TraceKeyError(
                f"{name!r} is not in this trace; it holds {len(self.tensors)} tensors, e.g. {self._some()}"
            )
        return self.tensors[name]

    def state(self, window: int, pass_: int, layer: int) -> torch.Tensor:
        """Fast-weight state S after pass `pass_` of `window` in fast-weight layer `layer`: [K, H, K, V]."""
        return self._point("fw.state", window, pass_, layer)

    def attn(self, window: int, pass_: int, layer: int) -> torch.Tensor:
        """Attention probabilities of attention layer `layer`: [K, H, L, L] (query, key)."""
        return self._point("attn.probs", window, pass_, layer)

    def logits(self, window: int) -> torch.Tensor:
        """Logits of a wake window: [K, L, vocab]."""
        name = f"window.{window}/logits"
        if name not in self.tensors:
            found = sorted(int(m[1]) for k in self.tensors if (m := _LOGITS.fullmatch(k)))
            valid = f"the wake windows {_ints(found)}" if found else "none (record_trace's include left them out)"
            raise TraceKeyError(f"{name!r} is not in this trace: it holds the logits of {valid}")
        return self.tensors[name]

    def _point(self, point: str, window: int, pass_: int, layer: int) -> torch.Tensor:
        """The tensor of record point `point` (fw.state or attn.probs) at (window, pass, layer); TraceKeyError
        listing the windows, passes and layers this trace holds where there is none."""
        name = f"window.{window}/pass.{pass_}/layer.{layer}/{point}"
        if name in self.tensors:
            return self.tensors[name]
        what, kind = {"fw.state": ("fast-weight state", "fw"), "attn.probs": ("attention probabilities", "attn")}[point]
        held = {tuple(map(int, m.groups()[:3])) for k in self.tensors if (m := _POINT.fullmatch(k)) and m[4] == point}
        if not held:
            raise TraceKeyError(
                f"{name!r} is not in this trace: it holds no {what} ({point}) at all (the model has no {kind} "
                "layer, or record_trace's include left them out)"
            )
        windows = sorted({w for w, _, _ in held})
        passes = {w: sorted({p for v, p, _ in held if v == w}) for w in windows}
        layers = sorted({v for _, _, v in held})
        if window not in passes:
            problem = f"window {window} is not one of its windows"
        elif pass_ not in passes[window]:
            problem = f"window {window} has pass {_ints(passes[window])} only"
        else:
            problem = f"layer {layer} is not one of its {kind} layers"
        by_window = "; ".join(f"window {w}: pass {_ints(ps)}" for w, ps in passes.items())
        raise TraceKeyError(
            f"{name!r} is not in this trace: {problem}. Its {what}: windows {_ints(windows)} ({by_window}), "
            f"{kind} layers {_ints(layers)}"
        )

    @property
    def anytime(self) -> pl.DataFrame:
        return self.tables["anytime"]

    def _some(self) -> str:
        return ", ".join(sorted(self.tensors)[:3])


# --- recording ------------------------------------------------------------------------------------------------


@torch.no_grad()
def record_trace(
    model,
    info: dict,
    examples: list[Example],
    *,
    checkpoint: str,
    seed: int,
    passes: int | None = None,
    anytime: bool = True,
    include: tuple[str, ...] = DEFAULT_POINTS,
    checkpoint_sha256: str | None = None,
    example_seeds: list[int] | None = None,
    task_changes: dict | None = None,
) -> Trace:
    """Run `model` over `examples` (one batch; they share a length) with a Recorder, and build the trace.

    N = `passes` or the trained N. The recorded run uses N passes; with `anytime`, the model runs again at every
    n = 1..N−1 for the anytime readout. `include` (glob patterns over record point names) picks what is kept in
    `tensors`; the tables are built whatever it says. `task_changes` ({setting: value}): the examples come from the
    checkpoint's task with these settings changed (results.task_for); meta.json then holds the changed task and
    `task_changed` ({setting: [trained, here]}).
    """
    if not examples:
        raise ValueError("a trace needs at least one example")
    N = info["sleep"]["passes"] if passes is None else passes
    if N < 1:
        raise ValueError(f"passes (N) must be >= 1; got {N}")
    task, changed = task_for(info, task_changes)
    model.eval()
    batch = collate(examples, next(model.parameters()).device)
    record, logits = _run(model, batch, N, tuple(include), anytime)
    windows = _windows(model, batch["loss_mask"])
    meta = {
        "format": FORMAT,
        "checkpoint": checkpoint,
        "checkpoint_sha256": checkpoint_sha256,
        "task": {"name": task.name, "params": dict(task.params)},
        "seed": seed,
        "examples": len(examples),
        "example_seeds": example_seeds,
        "split": _split(task, examples),
        "passes": N,
        "trained_passes": info["sleep"]["passes"],
        "loop": model.sleep.loop,  # sleep: the N passes run on context windows; wake: on the windows read out
        "window": windows[0]["end"] - windows[0]["start"],
        "layers": model.cfg.mixers,
        "windows": windows,
        "code_version": _code_version(),
    }
    if changed:  # absent on the trained task, as in traces written before it existed
        meta["task_changed"] = changed
    tables = {
        "tokens": tokens_table(examples, windows, task),
        "state": state_table(record, windows, meta["layers"], N, meta["loop"]),
        "hidden": hidden_table(record, windows),
        "anytime": anytime_table(examples, batch["loss_mask"], logits, task),
    }
    kept = {k: v for k, v in sorted(record.items()) if any(fnmatch.fnmatchcase(k, p) for p in include)}
    return Trace(meta, kept, tables)


def _run(
    model, batch: dict[str, torch.Tensor], N: int, include: tuple[str, ...], anytime: bool
) -> tuple[dict[str, torch.Tensor], dict[int, torch.Tensor]]:
    """The recorded run at N passes (float32 CPU record points), and logits {n: [K, T, vocab]} for the readout."""
    rec = Recorder(include + _TABLE_POINTS)
    out = model(batch["tokens"], batch["loss_mask"], passes=N, rec=rec)
    logits = {N: out.logits}
    for n in range(1, N if anytime else 1):
        logits[n] = model(batch["tokens"], batch["loss_mask"], passes=n).logits
    return {k: v.float().contiguous() for k, v in rec.store.items()}, logits


def _windows(model, loss_mask: torch.Tensor) -> list[dict]:
    """The windows as the model cuts them; a window is wake when any example scores a position in it (as in forward)."""
    return [
        {"index": w, "start": s, "end": e, "kind": "wake" if bool(loss_mask[:, s:e].any()) else "context"}
        for w, (s, e) in enumerate(model.windows(loss_mask.shape[1]))
    ]


def _passes(window: dict, N: int, loop: str = "sleep") -> int:
    """Passes the model runs over a window: N over context windows (over the windows read out for the wake loop)."""
    return N if (window["kind"] == "context") == (loop == "sleep") else 1


def is_wake_loop(meta: dict) -> bool:
    """Whether a trace is of the wake-loop control. Traces written before the wake loop existed hold no "loop":
    theirs is sleep."""
    return meta.get("loop", "sleep") == "wake"


def sleep_passes(meta: dict) -> int:
    """Passes a trace holds per context window: its N, or 1 for the wake loop (its N passes run on the windows read
    out)."""
    return 1 if is_wake_loop(meta) else meta["passes"]


def _split(task: Task, examples: list[Example]) -> str:
    splits = {split_of(task.key(ex.meta)) for ex in examples}
    return splits.pop() if len(splits) == 1 else "mixed"


def _code_version() -> str:
    from sleepcore.train import code_version  # train pulls in the optimiser and tqdm; only needed here

    return code_version()


# --- tables ---------------------------------------------------------------------------------------------------


def _frame(name: str, columns: dict[str, list]) -> pl.DataFrame:
    return pl.DataFrame(columns, schema=SCHEMAS[name]).sort(KEYS[name])


def tokens_table(examples: list[Example], windows: list[dict], task: Task) -> pl.DataFrame:
    """One row per (example, position)."""
    cols: dict[str, list] = {c: [] for c in SCHEMAS["tokens"]}
    where = [(w["index"], w["kind"]) for w in windows for _ in range(w["start"], w["end"])]
    for i, ex in enumerate(examples):
        depths = iter(ex.depth)  # one depth per scored position, in order
        for t, (tok, tgt, scored) in enumerate(zip(ex.tokens, ex.targets, ex.loss_mask)):
            row = {
                "example": i,
                "position": t,
                "window": where[t][0],
                "kind": where[t][1],
                "token_id": tok,
                "token": task.vocab.tokens[tok],
                "scored": scored,
                "target": tgt if scored else -1,
                "target_token": task.vocab.tokens[tgt] if scored else None,
                "depth": next(depths) if scored else -1,
            }
            for c, v in row.items():
                cols[c].append(v)
    return _frame("tokens", cols)


def _grid(*sizes: int) -> list[torch.Tensor]:
    """Flattened index columns of a row-major grid of the given sizes."""
    return [g.reshape(-1) for g in torch.meshgrid(*(torch.arange(s) for s in sizes), indexing="ij")]


def _block(name: str, columns: dict[str, int | str | list | torch.Tensor]) -> pl.DataFrame:
    """A table block from per-row columns (tensors or lists) and constants (broadcast), all of one length."""
    rows = {k: v.reshape(-1).tolist() if isinstance(v, torch.Tensor) else v for k, v in columns.items()}
    n = max(len(v) for v in rows.values() if isinstance(v, list))
    rows = {k: v if isinstance(v, list) else [v] * n for k, v in rows.items()}
    return pl.DataFrame(rows, schema={c: SCHEMAS[name][c] for c in rows})


def state_table(
    record: dict[str, torch.Tensor], windows: list[dict], layers: list[str], N: int, loop: str = "sleep"
) -> pl.DataFrame:
    """One row per (example, window, pass, layer, head) of fast-weight layers.

    delta at pass p is ‖S_p − S_{p−1}‖ with S_0 the state entering the window: zeros before the first window,
    else the state the previous window carried on (its last pass's; pass 1's after a wake loop), so pass 1 of a
    window shows what that window wrote.
    """
    blocks = []
    for layer in (i for i, m in enumerate(layers) if m == "fw"):
        carried = None
        for w in windows:
            prev = carried
            for p in range(1, _passes(w, N, loop) + 1):
                S = record[f"window.{w['index']}/pass.{p}/layer.{layer}/fw.state"].double()  # [K, H, K, V]
                before = torch.zeros_like(S) if prev is None else prev
                norm = torch.linalg.norm(S, dim=(-2, -1))  # [K, H]
                delta = torch.linalg.norm(S - before, dim=(-2, -1))
                ex, head = _grid(*norm.shape)
                cols = {"example": ex, "window": w["index"], "pass": p, "layer": layer, "head": head, "norm": norm}
                cols |= {"delta": delta, "rel_delta": delta / norm.clamp_min(1e-12)}
                blocks.append(_block("state", cols))
                prev = S
                if loop == "sleep" or p == 1:
                    carried = S
    return _concat("state", blocks)


def hidden_table(record: dict[str, torch.Tensor], windows: list[dict]) -> pl.DataFrame:
    """One row per (example, window, pass, layer, position): the residual stream's norm after the block."""
    pattern = re.compile(r"window\.(\d+)/pass\.(\d+)/layer\.(\d+)/hidden")
    blocks = []
    for name, h in record.items():
        m = pattern.fullmatch(name)
        if m is None:
            continue
        w, p, layer = map(int, m.groups())
        norm = torch.linalg.norm(h.double(), dim=-1)  # [K, L]
        ex, pos = _grid(*norm.shape)
        cols = {"example": ex, "window": w, "pass": p, "layer": layer, "position": pos + windows[w]["start"]}
        blocks.append(_block("hidden", cols | {"norm": norm}))
    return _concat("hidden", blocks)


def anytime_table(
    examples: list[Example], loss_mask: torch.Tensor, logits: dict[int, torch.Tensor], task: Task
) -> pl.DataFrame:
    """One row per (example, scored position, n): the answer the model gives if it wakes after n passes.

    loss_mask [K, T]; logits {n: [K, T, vocab]}.
    """
    b, t = loss_mask.cpu().nonzero(as_tuple=True)  # row-major: by example, then position
    targets = torch.tensor([ex.targets for ex in examples])[b, t]
    depth = torch.tensor([d for ex in examples for d in ex.depth])  # scored order per example = row-major order
    words = task.vocab.tokens
    target_tokens = [words[i] for i in targets.tolist()]
    blocks = []
    for n, lg in sorted(logits.items()):
        scored = lg.detach().cpu()[b, t]  # [scored, vocab]
        pred = scored.argmax(-1)  # from the logits themselves, exactly as the model's own prediction
        probs = scored.double().softmax(-1)
        cols = {"example": b, "position": t, "depth": depth, "n": n, "target": targets, "target_token": target_tokens}
        cols |= {
            "predicted": pred,
            "predicted_token": [words[i] for i in pred.tolist()],
            "p_target": probs.gather(-1, targets[:, None])[:, 0],
            "p_predicted": probs.gather(-1, pred[:, None])[:, 0],
            "correct": pred == targets,
        }
        blocks.append(_block("anytime", cols))
    return _concat("anytime", blocks)


def _concat(name: str, blocks: list[pl.DataFrame]) -> pl.DataFrame:
    if not blocks:
        return pl.DataFrame(schema=SCHEMAS[name])
    return pl.concat(blocks).select(list(SCHEMAS[name])).sort(KEYS[name])


# --- files ----------------------------------------------------------------------------------------------------


def check_trace_out(out_dir: str | Path, flag: str = "the trace folder") -> Path:
    """The folder a trace may be written to, checked before anything is computed; TraceError saying what is
    there and what to do otherwise. Returns it as a Path.

    Fine: a path that does not exist yet (write_trace makes it), an empty folder, a trace folder (its meta.json is
    a trace's: the trace is replaced) and a folder whose trace writing was cut short (it holds write_trace's
    marker). Refused: an empty path (it would be the current folder), a file, a folder holding anything else (a
    checkpoint, someone's files: the trace would replace their meta.json or mix its files in with theirs), and a
    place where no file can be made (`flag` names the path there, as the command line gave it).
    """
    if not str(out_dir).strip():
        raise TraceError("the trace folder is an empty path; give a folder for the trace, e.g. --out traces/NAME")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TraceError(f"cannot write a trace to {out}: it is a file, not a folder; give a new or empty folder")
    if out.is_dir() and not _trace_folder(out):
        entries = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # dotfiles: .DS_Store, temp files
        if entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            what = "a checkpoint folder" if "config.json" in entries else "a folder that is not a trace"
            mine = f"its {META} is not a trace's" if META in entries else f"no trace {META}"
            raise TraceError(
                f"cannot write a trace to {out}: it is {what} (it holds {shown}; {mine}), and the trace "
                "would replace or mix in with what is there; give a new folder, an empty one or a trace folder"
            )
    try:  # a file can be made where the trace's files will be (a real test: os.access passes root everywhere)
        check_out(out, flag, folder=True)
    except ValueError as e:
        raise TraceError(str(e)) from None
    return out


def _trace_folder(folder: Path) -> bool:
    """Whether `folder` holds a trace written by write_trace (a trace meta.json), or one whose writing was cut
    short (write_trace's marker): a folder write_trace may write into again."""
    for name, keys in ((META, ("files", "windows")), (WRITING, ())):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("format") == FORMAT and all(k in data for k in keys):
            return True
    return False


def write_trace(trace: Trace, out_dir: str | Path) -> dict:
    """Write the trace folder; returns the meta.json written (with `files`: {name: sha256}).

    The folder must be new, empty or a trace folder (`check_trace_out`, which callers can run before computing
    the trace). Every file goes through a temporary file and a rename. meta.json is removed first and written
    last, so a folder whose writing was cut short has no meta.json and cannot be mistaken for a trace; a marker
    file (.trace-writing.json), removed at the end, lets the trace be written there again.
    """
    out = check_trace_out(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / WRITING, {"format": FORMAT, "writing": "a sleepcore trace; meta.json is written last"})
    (out / META).unlink(missing_ok=True)
    payloads = {TENSORS: save_safetensors(trace.tensors)}
    for name in TABLES:
        payloads[f"{name}.parquet"] = _parquet_bytes(trace.tables[name])
    for name, data in payloads.items():
        atomic_write(out / name, lambda tmp, data=data: Path(tmp).write_bytes(data))
    meta = {**trace.meta, "files": {name: _sha256(data) for name, data in payloads.items()}}
    write_json(out / META, meta)
    (out / WRITING).unlink(missing_ok=True)
    return meta


def _parquet_bytes(df: pl.DataFrame) -> bytes:
    # Serialised in memory with fixed options so the bytes are a function of the table alone (no paths, no times).
    buf = io.BytesIO()
    df.write_parquet(buf, **_PARQUET)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_trace(trace_dir: str | Path) -> Trace:
    """Read a trace folder, checking meta.json (its keys), every file's sha256, each table's columns and types
    and the tensors' batch size; TraceError naming the file and what is wrong otherwise."""
    if not str(trace_dir).strip():  # Path("") is the current folder
        raise TraceError("no trace folder given (an empty path); give the folder `sleepcore trace --out` wrote")
    folder = Path(trace_dir)
    meta = _read_meta(folder)
    data = {name: _read_checked(folder, name, digest) for name, digest in meta["files"].items()}
    K = meta["examples"]
    try:
        tensors = dict(sorted(load_safetensors(data[TENSORS]).items()))
    except (SafetensorError, ValueError) as e:
        raise TraceError(f"{folder / TENSORS} is unreadable as safetensors: {e}") from None
    if odd := [f"{k} {tuple(v.shape)}" for k, v in tensors.items() if v.ndim == 0 or v.shape[0] != K]:
        raise TraceError(
            f"{folder / TENSORS} is not this trace's: meta.json says {K} examples, but the first dimension of "
            f"{', '.join(odd[:3])}{' …' if len(odd) > 3 else ''} is not {K}"
        )
    tables = {}
    for name in TABLES:
        path = folder / f"{name}.parquet"
        try:
            tables[name] = pl.read_parquet(io.BytesIO(data[f"{name}.parquet"]))
        except Exception as e:  # polars raises several error types for a bad file; all mean the same here
            raise TraceError(f"{path} is unreadable as Parquet: {e}") from None
        _check_table(path, name, tables[name], K)
    return Trace(meta, tensors, tables)


def _check_table(path: Path, name: str, df: pl.DataFrame, examples: int) -> None:
    """TraceError unless `df` has the columns and types of the trace table `name` (SCHEMAS) and examples 0..K−1."""
    have = dict(df.schema)
    missing = [c for c in SCHEMAS[name] if c not in have]
    mistyped = [f"{c} is {have[c]}, not {t}" for c, t in SCHEMAS[name].items() if c in have and have[c] != t]
    if missing or mistyped:
        problems = ([f"missing columns {missing}"] if missing else []) + mistyped[:4]
        raise TraceError(
            f"{path} is not a trace's {name} table ({'; '.join(problems)}); its columns are {list(have)}. "
            f"A {name} table has {', '.join(SCHEMAS[name])} (docs/TRACE_SCHEMA.md)"
        )
    if df.height and not (0 <= df["example"].min() and df["example"].max() < examples):
        raise TraceError(
            f"{path} is not this trace's {name} table: it has examples {df['example'].min()}–{df['example'].max()}, "
            f"but meta.json says {examples} examples (0–{examples - 1})"
        )


def _is_int(v, least: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= least


def _is_window(w) -> bool:
    return (
        isinstance(w, dict)
        and all(_is_int(w.get(k)) for k in ("index", "start", "end"))
        and w.get("kind") in ("context", "wake")
    )


META_KEYS = {  # what every trace's meta.json holds besides format and files, and what it must be
    "checkpoint": (lambda v: isinstance(v, str), "a name"),
    "task": (
        lambda v: isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("params"), dict),
        "{name, params}",
    ),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "examples": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "passes": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "window": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "layers": (lambda v: isinstance(v, list) and bool(v) and all(isinstance(m, str) for m in v), "a list of mixers"),
    "windows": (
        lambda v: isinstance(v, list) and bool(v) and all(map(_is_window, v)),
        'a list of {index, start, end, kind: "context"|"wake"}',
    ),
}


def _read_meta(folder: Path) -> dict:
    path = folder / META
    if not folder.exists():
        raise TraceError(f"no trace at {folder}: it does not exist")
    if not folder.is_dir():
        raise TraceError(f"no trace at {folder}: it is a file; a trace is a folder (docs/TRACE_SCHEMA.md)")
    if not path.is_file():
        raise TraceError(f"{path} is missing: {folder} is not a trace folder (or its writing was cut short)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TraceError(f"{path} is not valid JSON: {json_problem(e)}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise TraceError(f"{path} is not a trace meta.json of format {FORMAT} (format: {got!r})")
    files = meta.get("files")
    if not isinstance(files, dict) or not all(isinstance(d, str) for d in files.values()):
        raise TraceError(f"{path} has no valid 'files' entry ({{file name: sha256}})")
    needed = [TENSORS] + [f"{t}.parquet" for t in TABLES]
    unlisted = [n for n in needed if n not in files]
    if unlisted:
        raise TraceError(f"{path} does not list {', '.join(unlisted)}")
    odd = [n for n in files if Path(n).name != n or n in (".", "..")]
    if odd:
        raise TraceError(f"{path} lists files outside the trace folder: {odd}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise TraceError(f"{path} lacks {', '.join(missing)}; a trace meta.json holds {', '.join(META_KEYS)}")
    for key, (ok, what) in META_KEYS.items():
        if not ok(meta[key]):
            raise TraceError(f"{path}: {key} must be {what}; got {_short(meta[key])}")
    if meta.get("loop", "sleep") not in ("sleep", "wake"):
        raise TraceError(f'{path}: loop must be "sleep" or "wake"; got {_short(meta["loop"])}')
    return meta


def _short(value, width: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _read_checked(folder: Path, name: str, digest: str) -> bytes:
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TraceError(f"{path} is missing (listed in meta.json)") from None
    except OSError as e:
        raise TraceError(f"{path} is unreadable: {e}") from None
    if _sha256(data) != digest:
        raise TraceError(f"{path} has been changed: its sha256 does not match meta.json (hash mismatch)")
    return data


# --- from a checkpoint ----------------------------------------------------------------------------------------


def example_seeds(seed: int, k: int) -> list[int]:
    """The sampling seed of each of the k examples of a trace with this seed."""
    return [seed * 1_000_003 + i for i in range(k)]


def sample_examples(task: Task, k: int, seed: int) -> list[Example]:
    """k test-split examples spread over the task's depths: example i at depth depths[i % len(depths)]."""
    return [
        task.sample(1, seed=s, split="test", depth=task.depths[i % len(task.depths)])[0]
        for i, s in enumerate(example_seeds(seed, k))
    ]


# The most examples one trace records: they run as one batch with every record point kept, so memory grows with them
# (gsm-chain-1w-long-n4, 256 examples: 711 MB peak resident, 70 MB written, 79 s on the project's machine).
MAX_TRACE_EXAMPLES = 1024


def trace_checkpoint(
    name_or_path: str | Path,
    examples: int = 8,
    seed: int = 0,
    passes: int | None = None,
    task_changes: dict | None = None,
) -> Trace:
    """Load a checkpoint (folder or shipped name), sample `examples` test examples from `seed` (from its task with
    `task_changes`, if any: results.task_for), and record a trace."""
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ValueError(f"examples must be a positive integer; got {examples!r}")
    if examples > MAX_TRACE_EXAMPLES:
        raise ValueError(
            f"examples must be at most {MAX_TRACE_EXAMPLES}; got {examples}. A trace keeps every recorded tensor of "
            "one batch in memory (about 2.5 MB an example); for accuracy over more examples use `sleepcore eval`, "
            "for fast-weight states `sleepcore probe`"
        )
    check_seed(seed)
    if passes is not None:
        from sleepcore.results import _check_passes  # the test-time N every command accepts: 1..MAX_PASSES

        _check_passes([passes])
    folder = resolve(name_or_path)
    model, info = load_checkpoint(folder)
    task, _ = task_for(info, task_changes)
    return record_trace(
        model,
        info,
        sample_examples(task, examples, seed),
        checkpoint=folder.name,
        seed=seed,
        passes=passes,
        checkpoint_sha256=weights_sha256(folder),
        example_seeds=example_seeds(seed, examples),
        task_changes=task_changes,
    )
