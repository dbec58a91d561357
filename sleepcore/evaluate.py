"""Accuracy by depth with Wilson 95% intervals, on held-out (test split) examples."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from sleepcore.data import collate


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for k successes out of n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Cell:
    correct: int = 0
    total: int = 0

    def add(self, correct: int, total: int) -> None:
        self.correct += correct
        self.total += total

    def as_dict(self) -> dict:
        acc = self.correct / self.total if self.total else float("nan")
        lo, hi = wilson(self.correct, self.total)
        return {"acc": acc, "lo": lo, "hi": hi, "correct": self.correct, "n": self.total}


@dataclass
class EvalResult:
    answers: dict[int, Cell] = field(default_factory=dict)  # per answer, by its depth
    exact: dict[int, Cell] = field(default_factory=dict)  # per sequence (all answers right), by depth
    effective: dict[int, Cell] = field(default_factory=dict)  # per answer, by task.effective_depth (if it has one)
    first: dict[int, Cell] = field(default_factory=dict)  # the first answer of each sequence, by its depth

    def as_dict(self) -> dict:
        out = {
            "answers": {str(d): c.as_dict() for d, c in sorted(self.answers.items())},
            "exact": {str(d): c.as_dict() for d, c in sorted(self.exact.items())},
        }
        if self.effective:
            out["effective"] = {str(d): c.as_dict() for d, c in sorted(self.effective.items())}
        if self.first:
            out["first"] = {str(d): c.as_dict() for d, c in sorted(self.first.items())}
        return out


def sample_eval(task, per_depth: int, seed: int) -> list:
    """per_depth held-out examples at each of the task's reported depths; seeded and disjoint from training."""
    out = []
    for d in task.depths:
        out += task.sample(per_depth, seed=seed * 1009 + d, split="test", depth=d)
    return out


@torch.no_grad()
def evaluate(
    model, task, examples: list, passes: int | None = None, batch_size: int = 256, progress=None
) -> EvalResult:
    """Score examples. Sequences whose answers all share one depth also count toward exact (per-sequence) accuracy.
    Where the task defines an effective depth (Depo: k mod n; gsm: the question alone), answers are also counted by
    it. Where the task asks for it (Depo: later queries can lean on earlier answers), the first answer of each
    sequence is also counted alone, by its depth."""
    model.eval()
    device = next(model.parameters()).device
    result = EvalResult()
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        batch = collate(chunk, device)
        logits = model(batch["tokens"], batch["loss_mask"], passes=passes).logits
        right = (logits.argmax(-1) == batch["targets"]) & batch["loss_mask"]  # [B, T]
        for b, ex in enumerate(chunk):
            hits = right[b][batch["loss_mask"][b]].tolist()
            for d, h in zip(ex.depth, hits):
                result.answers.setdefault(d, Cell()).add(int(h), 1)
            if task.effective_depth_name is not None:
                for d, h in zip(task.effective_depth(ex), hits):
                    if d is not None:
                        result.effective.setdefault(d, Cell()).add(int(h), 1)
            if hits and task.first_answer_about:  # the answer no earlier answer of its sequence can have helped
                result.first.setdefault(ex.depth[0], Cell()).add(int(hits[0]), 1)
            if len(set(ex.depth)) == 1 and len(ex.depth) > 1:
                result.exact.setdefault(ex.depth[0], Cell()).add(int(all(hits)), 1)
        if progress is not None:
            progress(len(chunk))
    return result
