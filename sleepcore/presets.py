"""Named presets: a task plus the model, sleep and training settings that go with it.

A preset fixes everything but N. Variants build the baselines in the same code:
  hybrid          the sleep model (attention + fast weights under hard eviction)
  attn-only       attention in every block under the same eviction: nothing crosses a window (must be at chance)
  full-attention  attention in every block and no eviction: the upper reference, not a competitor
  wide            the hybrid with a 4× wider MLP: the N = 1 capacity control that tells depth from capacity
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sleepcore.config import ModelConfig, SleepConfig, TaskConfig, TrainConfig, check_together
from sleepcore.tasks import TASK_PRESETS, get_task

# Sleep settings that made N > 1 trainable in small models (FINDINGS.md): every pass sees the window's normalised
# embeddings; later passes add a gated, normalised copy of the previous pass's hidden states and a pass embedding.
INJECT = dict(feed="mix", norm_between=True, pass_embedding=True, embed_norm=True)


@dataclass(frozen=True)
class Preset:
    task: str  # a task preset name
    model: dict = field(default_factory=dict)
    sleep: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    about: str = ""
    continues: str = ""  # a preset whose shipped checkpoints this one continues training (train.init_from)


def shipped_name(preset: str, passes: int, variant: str = "hybrid") -> str:
    """The checkpoint name a preset's model is shipped under: PRESET-nN for the sleep model, PRESET-wake-loop-nN for
    the wake-loop control, PRESET-VARIANT for the other variants at N = 1 (the controls shipped), PRESET-VARIANT-nN
    at any other N."""
    if variant in ("hybrid", "wake-loop"):
        return f"{preset}-{'' if variant == 'hybrid' else 'wake-loop-'}n{passes}"
    return f"{preset}-{variant}" + (f"-n{passes}" if passes != 1 else "")


# Steps are sized so N = 4 trains in about an hour on one of 2 CPU cores (rule110 ≈ 0.3 s, depo ≈ 0.45 s,
# gsm ≈ 0.9 s per N = 4 step, measured on the project's machine); the curriculum reaches the largest depth by ~70%.
MINI_MODEL = dict(d_model=64, layers="attn,fw,attn,fw", attn_heads=2, fw_heads=2, head_dim=32, mlp_ratio=2.0)

# gsm chains: one operation only for the first 1,000 steps, then one more every 600.
GSM_CHAIN_TRAIN = dict(steps=4000, batch_size=64, lr=2e-3, warmup=200, curriculum_start=1000, curriculum_every=600)

PRESETS: dict[str, Preset] = {
    "rule110-mini": Preset(
        "rule110-mini",
        MINI_MODEL,
        INJECT,
        dict(steps=12000, batch_size=64, lr=2e-3, warmup=200),
        "one 16-bit row, evicted; predict the whole row after t = 1..8 Rule 110 steps",
    ),
    "depo-mini": Preset(
        "depo-mini",
        dict(MINI_MODEL, conv_size=4),
        INJECT,
        dict(steps=8000, batch_size=64, lr=2e-3, warmup=200, curriculum_start=800, curriculum_every=800),
        "a shuffled 4–12-node cycle in one evicted window; k-th successor queries, k = 1..8",
    ),
    "depo-k4": Preset(
        "depo-k4",
        dict(MINI_MODEL, conv_size=4),
        INJECT,
        dict(steps=6000, batch_size=64, lr=2e-3, warmup=200, curriculum_start=800, curriculum_every=800),
        "a shuffled 9–12-node cycle in one evicted window; k-th successor queries, k = 1..4, none wrapping around",
    ),
    "gsm-mini": Preset(
        "gsm-mini",
        dict(MINI_MODEL, conv_size=4),
        INJECT,
        dict(steps=4000, batch_size=64, lr=2e-3, warmup=200, curriculum_start=500, curriculum_every=500),
        "question, then shuffled equations mod 10 in two evicted windows; asks the question (1..6 ops), its ancestry",
    ),
    "gsm-chain": Preset(
        "gsm-chain",
        dict(MINI_MODEL, conv_size=4),
        INJECT,
        GSM_CHAIN_TRAIN,
        "gsm-mini with every operation on a variable and a constant (chains); 1 operation for the first 1,000 steps",
    ),
    "gsm-chain-c2": Preset(
        "gsm-chain-c2",
        dict(MINI_MODEL, conv_size=4),
        INJECT,
        dict(GSM_CHAIN_TRAIN, eval_every=250),
        "gsm-chain with constants 0..2, so an operand's value tells most of the answer; evaluated every 250 steps",
    ),
    "rule110-paper": Preset(
        "rule110-paper",
        dict(d_model=256, layers="attn,fw,attn,fw", attn_heads=4, fw_heads=4, head_dim=64),
        {},
        dict(steps=20000, batch_size=128, lr=1e-3, curriculum=False),
        "the paper's Rule 110: 4 rows of 24 bits, first bits after t = 4..32 steps",
    ),
    "depo-paper": Preset(
        "depo-paper",
        dict(d_model=512, layers="attn,fw,attn,fw", attn_heads=8, fw_heads=8, head_dim=64, conv_size=4),
        {},
        dict(steps=20000, batch_size=128, lr=1e-3, curriculum=False),
        "the paper's Depo: a cycle of up to 75 nodes in 4 windows of 75 tokens; k ∈ {1, 2, 4, 8, 16}",
    ),
    "gsm-paper": Preset(
        "gsm-paper",
        dict(d_model=256, layers="attn,fw,attn,fw", attn_heads=4, fw_heads=4, head_dim=64, conv_size=4),
        {},
        dict(steps=20000, batch_size=128, lr=1e-3),
        "a larger GSM-Infinite-style problem: 4 windows of 48 tokens, 1..8 operations",
    ),
    "tiny": Preset(
        "rule110-mini",
        dict(d_model=32, layers="attn,fw", attn_heads=2, fw_heads=2, head_dim=16, mlp_ratio=2.0),
        INJECT,
        dict(
            steps=300,
            batch_size=32,
            lr=3e-3,
            warmup=20,
            curriculum=False,
            eval_every=100,
            eval_examples=64,
            save_every=100,
        ),
        "a seconds-long smoke run for tests",
    ),
}

PRESETS["gsm-chain-1w"] = dataclasses.replace(
    PRESETS["gsm-chain-c2"],
    task="gsm-chain-1w",
    about="gsm-chain-c2 in one evicted window of 48 (question and every equation), 1..4 operations",
)

# Longer training for Rule 110 (all rule110-mini runs were still improving at 12,000 steps): each model continues
# from its shipped rule110-mini checkpoint for 8,000 more steps on batches 12,000..19,999 (data it never saw), with a
# fresh AdamW, a 200-step warm-up to half the first run's peak rate and a cosine decay.
PRESETS["rule110-long"] = dataclasses.replace(
    PRESETS["rule110-mini"],
    train=dict(steps=8000, batch_size=64, lr=1e-3, warmup=200, data_offset=12000),
    about="rule110-mini trained 8,000 steps more, from its shipped checkpoint at the same N and variant",
    continues="rule110-mini",
)

# Longer training for gsm-chain-1w: does N = 1 learn the operations given twice the steps, and does seed 1's N = 4
# (still improving at 4,000 steps) catch up? Each model continues from its shipped gsm-chain-1w checkpoint at the same
# N and variant (pass --set train.init_from=NAME for another seed's) for 4,000 more steps on batches 4,000..7,999, at
# every operation count from the start, with a fresh AdamW, a 200-step warm-up to half the first run's peak rate and
# a cosine decay, as rule110-long does.
PRESETS["gsm-chain-1w-long"] = dataclasses.replace(
    PRESETS["gsm-chain-1w"],
    train=dict(GSM_CHAIN_TRAIN, lr=1e-3, data_offset=4000),
    about="gsm-chain-1w trained 4,000 steps more, from its shipped checkpoint at the same N and variant",
    continues="gsm-chain-1w",
)

# The whole range of constants, as a curriculum: no gsm-chain model learned one operation with constants 0..9 from
# scratch (gsm-mini.md), but the gsm-chain-1w-long models know the chains with constants 0..2. Each continues from its
# gsm-chain-1w-long checkpoint at the same N and variant for 4,000 steps on gsm-chain-1w-c9 (the same window, vocabulary
# and model; only the constants' range changes), at every operation count from the start (batches 8,000..11,999 of
# its stream), with a fresh AdamW, a 200-step warm-up to half the first run's peak rate and a cosine decay.
PRESETS["gsm-chain-1w-c9"] = dataclasses.replace(
    PRESETS["gsm-chain-1w"],
    task="gsm-chain-1w-c9",
    train=dict(GSM_CHAIN_TRAIN, lr=1e-3, data_offset=8000),
    about="gsm-chain-1w-long continued on constants 0..9 (GSM-Infinite's range) instead of 0..2, 4,000 steps",
    continues="gsm-chain-1w-long",
)

# Does a slow seed finish the curriculum given more steps? Seed 1's gsm-chain-1w-c9 N = 4 was still climbing at 4,000
# steps (0.25 at 4 operations). Each model continues from its gsm-chain-1w-c9 checkpoint at the same N and variant
# (pass --set train.init_from=NAME for another seed's) for 4,000 more steps on batches 12,000..15,999, with the same
# fresh AdamW, warm-up and cosine decay; the task is unchanged.
PRESETS["gsm-chain-1w-c9-long"] = dataclasses.replace(
    PRESETS["gsm-chain-1w-c9"],
    train=dict(GSM_CHAIN_TRAIN, lr=1e-3, data_offset=12000),
    about="gsm-chain-1w-c9 trained 4,000 steps more, from its checkpoint at the same N and variant",
    continues="gsm-chain-1w-c9",
)

VARIANTS = ("hybrid", "attn-only", "full-attention", "wide", "wake-loop")


SECTIONS = ("model", "sleep", "task", "train")


def build(
    preset: str, passes: int = 1, variant: str = "hybrid", overrides: dict[str, dict] | None = None, **train_overrides
):
    """(ModelConfig, SleepConfig, TaskConfig, TrainConfig) for a preset at N = passes.

    overrides: {"model" | "sleep" | "task" | "train": {setting: value}} over the preset's values, after the variant's
    (task settings first, so that the vocabulary and window follow them); ValueError naming an unknown setting, or
    sections that do not fit each other. N is `passes` alone (never sleep.passes); full-attention has no sleep: N = 1.
    """
    overrides = overrides or {}
    if set(overrides) - set(SECTIONS):
        raise ValueError(f"unknown setting section(s) {sorted(set(overrides) - set(SECTIONS))}; valid: {SECTIONS}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    if "name" in overrides.get("task", {}):
        raise ValueError(
            f"task.name cannot be set: preset {preset!r} fixes its task ({TASK_PRESETS[PRESETS[preset].task][0]}); "
            "--set task.KEY changes that task's settings. For another task choose its preset: " + ", ".join(PRESETS)
        )
    if "passes" in overrides.get("sleep", {}):
        raise ValueError("sleep.passes is N: set it with --passes N (build's `passes`), not with --set sleep.passes")
    if variant == "full-attention" and passes != 1:
        raise ValueError(
            f"the full-attention variant never evicts, so it has no sleep and N must be 1; got --passes {passes}"
        )
    p = PRESETS[preset]
    task_name, task_params = TASK_PRESETS[p.task]
    task = get_task(task_name, **{**task_params, **overrides.get("task", {})})
    model = dict(p.model, vocab_size=len(task.vocab), max_positions=task.window)
    sleep = dict(p.sleep, passes=passes, window=task.window)
    if variant in ("attn-only", "full-attention"):
        model["layers"] = ",".join("attn" for _ in model["layers"].split(","))
    if variant == "full-attention":
        sleep, model["max_positions"] = dict(passes=1, window=None), task.seq_len
    if variant == "wake-loop":
        sleep["loop"] = "wake"
    if variant == "wide":
        model["mlp_ratio"] = 4 * model.get("mlp_ratio", ModelConfig.mlp_ratio)
    train = {**p.train, **{k: v for k, v in train_overrides.items() if v is not None}}
    if p.continues and "init_from" not in {**train, **overrides.get("train", {})}:
        base = shipped_name(p.continues, passes, variant)
        seed = overrides.get("train", {}).get("seed", train.get("seed", TrainConfig.seed))
        # the preset's base is seed 0's: another seed's run would continue it silently (a seed of the wrong type is
        # left to the type check below)
        if isinstance(seed, int) and not isinstance(seed, bool) and seed != TrainConfig.seed:
            raise ValueError(
                f"preset {preset!r} continues the shipped {base} (seed {TrainConfig.seed}'s); with --seed {seed} name "
                f"the model to continue: --set train.init_from={base}-s{seed} (seed {seed}'s, where shipped), or "
                f"--set train.init_from={base} to continue seed {TrainConfig.seed}'s"
            )
        train["init_from"] = base
    for section, values, cls in (
        ("model", model, ModelConfig),
        ("sleep", sleep, SleepConfig),
        ("train", train, TrainConfig),
    ):
        given = dict(overrides.get(section, {}), **(train_overrides if section == "train" else {}))
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ValueError(f"unknown {section} setting(s) {unknown}; valid: {', '.join(valid)}")
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        optional = {f.name for f in dataclasses.fields(cls) if "None" in str(f.type)}
        for key, value in overrides.get(section, {}).items():
            values[key] = _typed(f"{section}.{key}", value, values.get(key, defaults[key]), key in optional)
    if sleep.get("window", SleepConfig.window) is None and "max_positions" not in overrides.get("model", {}):
        model["max_positions"] = task.seq_len  # no eviction: the model reads the whole sequence at once
    configs = (
        ModelConfig(**model),
        SleepConfig(**sleep),
        TaskConfig(task_name, dict(task.params)),
        TrainConfig(**train),
    )
    for c in configs:
        c.validate()
    check_together(*configs[:3])
    return configs


def _typed(name: str, value, like, optional: bool = False):
    """value as the type of `like` (the setting's current value): an int for a float setting becomes a float,
    a list for a tuple a tuple; None where the setting is optional; anything else of the wrong type is a ValueError
    naming the setting."""
    if like is None or (optional and value is None):  # optional settings (sleep.window None = no eviction)
        return value
    kind = type(like)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    if type(value) is not kind:
        raise ValueError(f"{name} must be {kind.__name__}, like {like!r}; got {value!r}")
    return value
