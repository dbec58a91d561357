"""Frozen dataclass configs, saved whole in every checkpoint, validated on the way in."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

MIXERS = ("attn", "fw")
FEEDS = ("hidden", "embed", "mix")
LOOPS = ("sleep", "wake")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int = 64
    layers: str = "attn,fw,attn,fw"  # the stack, one mixer per block
    attn_heads: int = 2
    fw_heads: int = 2
    head_dim: int = 32  # K = V of every fast-weight head
    mlp_ratio: float = 4.0
    rule: str = "delta"  # fast-weight update: delta (Gated DeltaNet) or hebbian (gated linear attention)
    conv_size: int = 0  # short causal depthwise conv on q/k/v of fast-weight mixers; 0 = none
    max_positions: int = 64  # learned positions: within a window, or the whole sequence without eviction
    backend: str = "auto"  # fast-weight op backend
    chunk_size: int = 64
    norm_eps: float = 1e-6

    @property
    def mixers(self) -> list[str]:
        return [m.strip() for m in self.layers.split(",")]

    def validate(self) -> None:
        check_types(self)
        bad = [m for m in self.mixers if m not in MIXERS]
        if bad or not self.mixers:
            raise ValueError(f"layers {self.layers!r} has unknown mixer(s) {bad}; valid mixers: {', '.join(MIXERS)}")
        _positive(self, "vocab_size", "d_model", "attn_heads", "fw_heads", "head_dim", "max_positions", "chunk_size")
        if "attn" in self.mixers and self.d_model % self.attn_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by attn_heads={self.attn_heads}")
        if self.rule not in ("delta", "hebbian"):
            raise ValueError(f"rule {self.rule!r} is unknown; valid rules: delta, hebbian")
        if self.backend not in ("auto", "naive", "chunk", "triton"):
            raise ValueError(f"backend {self.backend!r} is unknown; valid: auto, naive, chunk, triton")
        if self.mlp_ratio <= 0 or self.conv_size < 0:
            raise ValueError("mlp_ratio must be > 0 and conv_size >= 0")


@dataclass(frozen=True)
class SleepConfig:
    passes: int = 1  # N: recurrent passes over every context window before it is evicted; 1 = plain hybrid
    window: int | None = 24  # L: tokens per window; None = no eviction (one window: the full-attention reference)
    feed: str = "hidden"  # what feeds pass n+1: the previous pass's hidden states (the paper), the embeddings, or a mix
    norm_between: bool = False  # RMSNorm on the previous pass's hidden states before they feed the next pass
    pass_embedding: bool = False  # a learned vector per pass index (passes 2..N) added to the pass input
    embed_norm: bool = False  # RMSNorm on the window's embeddings (every pass and every wake window)
    checkpoint_passes: bool = False  # recompute each pass in backward: memory no longer grows with N
    # where the N passes run: "sleep", over every context window before it is evicted (the method); or "wake", over
    # every window that is read out, each pass from the state S had when that window began, with context windows
    # written once (the control that loops at prediction time, as Huginn and Ouro do: the same compute per window,
    # paid while answering instead of offline)
    loop: str = "sleep"

    def validate(self) -> None:
        check_types(self)
        if self.passes < 1:
            raise ValueError(f"passes (N) must be >= 1; got {self.passes}")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window (L) must be >= 1 or None (no eviction); got {self.window}")
        if self.feed not in FEEDS:
            raise ValueError(f"feed {self.feed!r} is unknown; valid: {', '.join(FEEDS)}")
        if self.loop not in LOOPS:
            raise ValueError(f"loop {self.loop!r} is unknown; valid: {', '.join(LOOPS)}")


@dataclass(frozen=True)
class TaskConfig:
    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from sleepcore.tasks import get_task

        check_types(self)
        get_task(self.name, **self.params)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 8000
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05  # on matrices only
    betas: tuple[float, float] = (0.9, 0.95)
    warmup: int = 200
    min_lr_ratio: float = 0.05  # cosine decays to this fraction of lr
    clip: float = 1.0
    seed: int = 0  # parameter initialisation
    data_seed: int = 1234  # batch s is sampled from seed (data_seed, s): fixed data order, whatever N
    curriculum: bool = True  # grow the largest trained depth with the step count
    curriculum_start: int = 800  # steps at min_depth before the largest depth grows
    curriculum_every: int = 700  # steps per +1 of the largest depth
    eval_every: int = 500
    eval_examples: int = 512
    save_every: int = 500
    threads: int = 1
    init_from: str | None = None  # continue training: start from this shipped checkpoint's weights (a name)
    data_offset: int = 0  # batch s is drawn, and the curriculum read, at step data_offset + s

    def validate(self) -> None:
        check_types(self)
        _positive(
            self, "steps", "batch_size", "curriculum_every", "eval_every", "eval_examples", "save_every", "threads"
        )
        betas = self.betas
        if not (isinstance(betas, tuple) and len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas)):
            shown = list(betas) if isinstance(betas, tuple) else betas
            raise ValueError(
                f"train.betas must be two numbers in [0, 1) (AdamW's beta1 and beta2), like [0.9, 0.95]; got {shown!r}"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if not self.clip > 0:  # clip_grad_norm_ with a negative norm flips the gradients' sign
            raise ValueError(f"clip (the gradients' largest norm) must be > 0; got {self.clip}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"min_lr_ratio (the cosine's end, a fraction of lr) must be in [0, 1]; got {self.min_lr_ratio}"
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}")
        for name in ("warmup", "curriculum_start"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (steps); got {getattr(self, name)}")
        if not isinstance(self.data_offset, int) or isinstance(self.data_offset, bool) or self.data_offset < 0:
            raise ValueError(f"data_offset must be an integer >= 0; got {self.data_offset!r}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not _is_name(self.init_from)):
            raise ValueError(
                f"init_from must name a checkpoint under checkpoints/ (letters, digits, '-', '_', '.'); "
                f"got {self.init_from!r}"
            )


CONFIG_TYPES = {"model": ModelConfig, "sleep": SleepConfig, "task": TaskConfig, "train": TrainConfig}

# The JSON type each annotation asks for: (test, what to call it in a message). bool is not an int here, though Python
# says it is; a float setting takes an int (JSON writes 2.0 as 2 in some hands). Fields not listed (train.betas) are
# checked by their section's validate().
_TYPES = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an int"),
    "float": (lambda v: _is_number(v), "a finite number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "int | None": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an int or null"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "a JSON object"),
}


def check_types(cfg) -> None:
    """ValueError naming the first setting whose value has the wrong type, e.g. "sleep.passes must be an int"."""
    section = next(name for name, cls in CONFIG_TYPES.items() if isinstance(cfg, cls))
    for f in dataclasses.fields(cfg):
        if f.type in _TYPES:
            ok, kind = _TYPES[f.type]
            value = getattr(cfg, f.name)
            if not ok(value):
                raise ValueError(f"{section}.{f.name} must be {kind}; got {value!r}")


def check_together(model: ModelConfig, sleep: SleepConfig, task: TaskConfig) -> None:
    """ValueError unless the sections fit each other: the model's vocabulary is the task's, sleep evicts at the task's
    window (or never: None, the full-attention reference), and the model has a position for every token it sees."""
    from sleepcore.tasks import get_task

    t = get_task(task.name, **task.params)
    if model.vocab_size != len(t.vocab):
        raise ValueError(
            f"model.vocab_size is {model.vocab_size} but task {task.name!r} with these parameters has a vocabulary "
            f"of {len(t.vocab)} tokens; model.vocab_size must be {len(t.vocab)}"
        )
    if sleep.window is not None and sleep.window != t.window:
        raise ValueError(
            f"sleep.window is {sleep.window} but task {task.name!r} lays its examples out in windows of {t.window} "
            f"tokens; sleep.window must be {t.window}, or null (no eviction)"
        )
    seen = t.seq_len if sleep.window is None else t.window
    if model.max_positions < seen:
        raise ValueError(
            f"model.max_positions is {model.max_positions} but the model reads {seen} tokens at a time "
            f"({'the whole sequence: sleep.window is null' if sleep.window is None else 'one window'}); "
            f"model.max_positions must be >= {seen}"
        )
    if sleep.window is None and sleep.passes > 1 and sleep.loop == "sleep":
        raise ValueError(
            f"sleep.passes is {sleep.passes} but sleep.window is null: nothing is evicted, so nothing is slept on; "
            "N must be 1 without eviction"
        )


def from_dict(cls, d: dict[str, Any]):
    """Build a config from a plain dict, naming any unknown or missing field."""
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object; got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; valid fields: {sorted(fields)}")
    required = [
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in d]
    if missing:
        raise ValueError(f"{cls.__name__} is missing required field(s) {missing}")
    d = {k: tuple(v) if isinstance(v, list) and k == "betas" else v for k, v in d.items()}
    try:
        cfg = cls(**d)
    except TypeError as e:
        raise ValueError(f"{cls.__name__}: {e}") from None
    cfg.validate()
    if cls is TaskConfig:  # task parameters added since a config was saved take their defaults (the same data)
        from sleepcore.tasks import get_task

        cfg = TaskConfig(cfg.name, dict(get_task(cfg.name, **cfg.params).params))
    return cfg


SEED_LIMIT = 2**63  # seeds land in Int64 columns (a sweep's eval_seed) and seed torch generators: 0 .. 2**63 - 1


def check_seed(value, what: str = "seed") -> None:
    """ValueError unless `value` is a seed: an integer from 0 to 2**63 - 1 (the CLI's --seed takes the same)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{what} must be an integer from 0 to 2**63 - 1 ({SEED_LIMIT - 1}); got {value!r}")


def cores() -> int:
    """The CPU cores this process may run on (its affinity: taskset and cgroup limits count), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _is_name(text: str) -> bool:
    """A checkpoint name, not a path: letters, digits, '-', '_' and '.', not starting with '.'."""
    return bool(text) and not text.startswith(".") and all(c.isalnum() or c in "-_." for c in text)


def _is_number(value) -> bool:
    """An int or a float that is finite: JSON's NaN and Infinity (which Python reads) are no setting's value."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(cfg, *names: str) -> None:
    for n in names:
        value = getattr(cfg, n)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            section = type(cfg).__name__.removesuffix("Config").lower()  # its config.json section, its --set name
            raise ValueError(f"{section}.{n} must be a positive integer; got {value!r}")
