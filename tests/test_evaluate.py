"""Evaluation: Wilson intervals, per-depth and exact counts, and Depo's effective depth (k mod n)."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from sleepcore.cli import format_eval
from sleepcore.data import collate
from sleepcore.evaluate import evaluate, sample_eval, wilson
from sleepcore.tasks import TASK_PRESETS, get_preset, get_task


class Oracle(torch.nn.Module):
    """Serves the examples it is given in order: predicts the target where `right(example, answer_index)` holds,
    and a wrong token elsewhere."""

    def __init__(self, task, examples, right):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # evaluate() asks for the model's device
        self.task, self.pending, self.right = task, list(examples), right

    def forward(self, tokens, loss_mask, passes=None):
        chunk, self.pending = self.pending[: tokens.shape[0]], self.pending[tokens.shape[0] :]
        batch = collate(chunk)
        assert torch.equal(batch["tokens"], tokens)
        pred = batch["targets"].where(batch["loss_mask"], 0)  # unscored targets hold an ignore index
        for b, ex in enumerate(chunk):
            for j, p in enumerate(batch["loss_mask"][b].nonzero().flatten().tolist()):
                if not self.right(ex, j):
                    pred[b, p] = (pred[b, p] + 1) % len(self.task.vocab)
        return SimpleNamespace(logits=F.one_hot(pred, len(self.task.vocab)).float())


def run_oracle(task, examples, right):
    return evaluate(Oracle(task, examples, right), task, examples, batch_size=7)


def test_wilson_matches_the_closed_form():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(5, 5)[1] == 1.0


def test_counts_by_depth_and_exact_against_recomputation():
    task = get_preset("rule110-mini")
    examples = sample_eval(task, 6, seed=3)
    res = run_oracle(task, examples, lambda ex, j: j % 2 == 0)  # every other answer right
    for d, cell in res.answers.items():
        answers = [j for ex in examples if ex.depth[0] == d for j in range(len(ex.depth))]
        assert cell.total == len(answers) and cell.correct == sum(j % 2 == 0 for j in answers)
        assert res.exact[d].total == 6 and res.exact[d].correct == 0
    assert not res.effective  # rule110's depth is the real one
    assert not res.first  # and no answer leans on an earlier one
    assert "effective" not in res.as_dict() and "first" not in res.as_dict()


def test_the_first_answer_of_each_sequence_is_counted_alone():
    task = get_preset("depo-k4")
    examples = sample_eval(task, 8, seed=4)
    res = run_oracle(task, examples, lambda ex, j: j == 0 and ex.depth[0] % 2 == 1)  # first answers at odd k only
    assert {d: (c.correct, c.total) for d, c in res.first.items()} == {d: (8 * (d % 2), 8) for d in task.depths}
    assert all(c.correct == 8 * (d % 2) for d, c in res.answers.items())  # the later answers, all wrong, count there
    shown = format_eval({**res.as_dict(), "first_about": task.first_answer_about})
    assert "the first answer of each sequence alone: the first query" in shown and "\n    3  1.000" in shown
    assert get_preset("rule110-mini").first_answer_about is None  # no table where answers cannot lean on each other


def test_depo_effective_depth_is_k_mod_n_and_is_counted():
    task = get_preset("depo-mini")
    examples = sample_eval(task, 20, seed=5)
    for ex in examples:
        n = len(ex.meta["cycle"])
        assert task.effective_depth(ex) == [k % n for k in ex.depth]
    res = run_oracle(task, examples, lambda ex, j: task.effective_depth(ex)[j] <= 2)
    assert set(res.effective) == {e for ex in examples for e in task.effective_depth(ex)}
    for e, cell in res.effective.items():
        assert cell.correct == (cell.total if e <= 2 else 0)
    assert sum(c.total for c in res.effective.values()) == sum(c.total for c in res.answers.values())
    shown = format_eval({**res.as_dict(), "effective_name": task.effective_depth_name})
    assert "hops k mod n" in shown and "\n    0  1.000" in shown


@pytest.mark.parametrize("order", ["deepest", "shallowest"])
def test_gsm_effective_depth_counts_the_question_alone(order):
    task = get_task("gsm", **{**TASK_PRESETS["gsm-chain-c2"][1], "order": order})
    examples = sample_eval(task, 10, seed=6)
    for ex in examples:
        eff = task.effective_depth(ex)
        assert len(eff) == len(ex.depth)
        # deepest first: the question leads and nothing shown precedes it; shallowest: every answer is a scaffold
        assert eff == ([ex.depth[0]] + [None] * (len(eff) - 1) if order == "deepest" else [None] * len(eff))
    res = run_oracle(task, examples, lambda ex, j: j == 0)  # only the first answer of each sequence right
    if order == "deepest":
        assert {d: (c.correct, c.total) for d, c in res.effective.items()} == {d: (10, 10) for d in task.depths}
    else:
        assert not res.effective and "effective" not in res.as_dict()
    assert sum(c.total for c in res.answers.values()) == sum(len(ex.depth) for ex in examples)


def test_a_gsm_descendant_answer_gives_its_operand_away():
    """Why the other answers are left out: a shown value and one equation recover the operand's value."""
    task = get_task("gsm", **TASK_PRESETS["gsm-chain-c2"][1])
    checked = 0
    for ex in task.sample(50, seed=8, depth=3):
        defs = {eq["var"]: eq for eq in ex.meta["equations"]}
        values = dict(zip(ex.meta["queries"], (int(w) for w in task.vocab.decode(ex.answers)), strict=True))
        for shown, later in zip(ex.meta["queries"], ex.meta["queries"][1:]):
            eq = defs[shown]
            if eq["op"] is not None and eq["args"][0] == later:  # shown = later (op) c, so later = shown (inverse) c
                c = eq["args"][1]
                undone = values[shown] - c if eq["op"] == "+" else values[shown] + c
                assert undone % task.modulus == values[later]
                checked += 1
    assert checked > 20
