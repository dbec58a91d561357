"""Seeded task generators: `get_task(name, **params)`, or a named preset: `get_preset("depo-mini")`."""

from __future__ import annotations

import json
from typing import Any

from sleepcore.tasks.base import Example, Task, Vocab, split_of
from sleepcore.tasks.depo import Depo
from sleepcore.tasks.gsm import Gsm
from sleepcore.tasks.rule110 import Rule110

TASKS: dict[str, type[Task]] = {"rule110": Rule110, "depo": Depo, "gsm": Gsm}

DEPO_MINI: dict[str, Any] = {
    "n_min": 4,
    "n_max": 12,
    "names": 24,
    "name_tokens": 1,
    "context_windows": 1,
    "window": 24,
    "queries": 4,
    "min_depth": 1,
    "max_depth": 8,
    "depths": (1, 2, 3, 4, 6, 8),
}
# 2 windows of 32 = 64 tokens: the question and 6 operations take 43 (a chain on one root) to 67 (6 operations on 7
# roots, redrawn as too long); noise fills what is left. The query window asks the question and up to 5 variables
# of its ancestry (18 tokens of 32): a first attempt with the question alone (one scored token per 96) stayed at
# chance for 1,000 steps at N = 4.
GSM_MINI: dict[str, Any] = {
    "modulus": 10,
    "ops": ("+", "-"),
    "min_depth": 1,
    "max_depth": 6,
    "depths": (1, 2, 3, 4, 5, 6),
    "variables": 24,
    "context_windows": 2,
    "window": 32,
    "queries": 6,
}

GSM_CHAIN_C2: dict[str, Any] = {**GSM_MINI, "constant": 1.0, "max_constant": 2}

TASK_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "rule110-paper": ("rule110", {}),
    "rule110-mini": (
        "rule110",
        {"W": 16, "R": 1, "whole_rows": True, "min_depth": 1, "max_depth": 8, "depths": (1, 2, 3, 4, 5, 6, 7, 8)},
    ),
    "depo-paper": ("depo", {}),
    "depo-mini": ("depo", DEPO_MINI),
    # depo-mini's cycles (4–12 nodes) are shorter than its deepest k, so k wraps around (k = 8 on a cycle of 8 is
    # the query itself) or is a short walk backwards. Here every cycle has more than 2 × 4 nodes: k = 1..4 is
    # exactly k hops forwards and at least k + 1 backwards.
    "depo-k4": ("depo", {**DEPO_MINI, "n_min": 9, "max_depth": 4, "depths": (1, 2, 3, 4)}),
    "gsm-paper": ("gsm", {}),
    "gsm-mini": ("gsm", GSM_MINI),
    # gsm-mini-n1 learned lookups but no operation in 4,000 steps. Two-thirds of its operations take two variables,
    # which need two reads in parallel and a sum of two retrieved values. Here every operation takes a variable and
    # a constant (`vA = vB + 3 ;`), so each ancestry is a chain: d operations are d + 1 reads in sequence.
    "gsm-chain": ("gsm", {**GSM_MINI, "constant": 1.0}),
    # gsm-chain at N = 4 stayed at chance on one operation too: with constants 0..9 an operand's value alone says
    # nothing about the answer, so retrieving it earns nothing until the sum is learned as well. Constants 0..2
    # keep an operand's value informative (the answer is within 2 of it), so the retrieval can be learned first.
    "gsm-chain-c2": ("gsm", GSM_CHAIN_C2),
    # gsm-chain-c2 spreads the equations over two windows, and a sleep replays only its own window: an equation in
    # the first whose operand is defined in the second cannot be resolved by sleeping. Here the question and every
    # equation share one window (a chain of 4 operations takes 31 of its 48 tokens), as Depo's cycle does.
    "gsm-chain-1w": (
        "gsm",
        {
            **GSM_CHAIN_C2,
            "max_depth": 4,
            "depths": (1, 2, 3, 4),
            "context_windows": 1,
            "window": 48,
            "queries": 5,
        },
    ),
}
# gsm-chain-1w with GSM-Infinite's whole range of constants, 0..9: what gsm-chain could not learn from scratch, taught
# after 0..2 (preset gsm-chain-1w-c9 continues the gsm-chain-1w-long models on it).
TASK_PRESETS["gsm-chain-1w-c9"] = ("gsm", {**TASK_PRESETS["gsm-chain-1w"][1], "max_constant": 9})


def get_task(name: str, /, **params: Any) -> Task:
    """The task `name` with `params` over its defaults; ValueError for an unknown name, parameter or bad value."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name](**params)


def changed_task(name: str, params: dict, changes: dict | None) -> tuple[Task, dict]:
    """Task `name` as trained (`params`, a checkpoint's) with `changes` to its settings, and what really changed:
    {setting: [trained, here]} over both tasks' full settings, defaults included (a setting an old config.json lacks
    is its default, not a change). ValueError for an unknown setting or a bad value, and for a change that weights
    trained on `params` cannot read: other tokens (Depo's and Rule 110's depths are tokens of their queries; gsm's
    ops are tokens) or another window."""
    if changes is not None and not isinstance(changes, dict):
        raise ValueError(f"task changes must be a dict of task settings; got {changes!r}")
    trained = get_task(name, **params)
    if not changes:
        return trained, {}
    try:
        task = get_task(name, **{**params, **changes})
    except ValueError as e:  # a range changed without the depths drawn from it: say which setting goes with it
        if "depths" in changes or not {"min_depth", "max_depth"} & set(changes) or "depths must lie in" not in str(e):
            raise
        raise ValueError(f"{e}: set task.depths with it, e.g. --set 'task.depths=[...]' within the new range") from None
    given = {k: v for k, v in changes.items() if trained.params.get(k) != (list(v) if isinstance(v, tuple) else v)}
    what = ", ".join(f"{k}={json.dumps(v)}" for k, v in (given or changes).items())  # the settings really changed
    if task.vocab.tokens != trained.vocab.tokens:
        n, m = len(trained.vocab), len(task.vocab)
        how = f"{n} tokens → {m}" if n != m else "the same number of tokens, reordered or replaced"
        raise ValueError(
            f"{what} changes the vocabulary of task {name!r} ({how}), and the weights read only the tokens they were "
            "trained on, at the ids they were trained on; change settings that keep it"
        )
    if task.window != trained.window:
        raise ValueError(f"{what} changes the context window ({trained.window} → {task.window}); the model's is fixed")
    there, here = trained.params, task.params
    changed = {k: [there.get(k), here.get(k)] for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)}
    return task, changed


def changes_text(changed: dict) -> str:
    """{setting: [trained, here]} as `setting trained → here, ...`, values in JSON (as --set takes them)."""
    return ", ".join(f"{k} {json.dumps(a)} → {json.dumps(b)}" for k, (a, b) in changed.items())


def changed_values(changed: dict | None) -> str | None:
    """{setting: [trained, here]} as `setting=here, ...` (the values a table's rows were computed with, as --set
    takes them; a table's task_changed column), or None for the trained task."""
    if not changed:
        return None
    return ", ".join(f"{k}={json.dumps(here)}" for k, (_, here) in changed.items())


def get_preset(preset: str) -> Task:
    """The task of a named preset (TASK_PRESETS)."""
    if preset not in TASK_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(TASK_PRESETS)}")
    name, params = TASK_PRESETS[preset]
    return get_task(name, **params)


__all__ = ["TASKS", "TASK_PRESETS", "Example", "Task", "Vocab", "get_preset", "get_task", "split_of"]
