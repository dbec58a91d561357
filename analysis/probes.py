"""Linear probes on fast-weight states: which facts of an evicted window can be read off S, per layer and pass.

Protocol (one row per fact × fact_depth × layer × pass × baseline × seed; the probes table of docs/TRACE_SCHEMA.md):

- Features. The model runs on held-out (test-split) examples up to and including one context window (the last by
  default: its state is what crosses the eviction), recording the fast-weight state S [H, K, V] after every pass.
  rule110 probes the flattened state (H·K·V features). depo and gsm probe the readout of one token x,
  o = Sᵀ q(x) per head, concatenated (H·V features), where q(x) is what layer l's q path gives for x alone at the
  start of a window: token + position-0 embedding (+ embed_norm) → block l's norm1 → q projection → the short
  conv and SiLU if the model has them (on this one-token input: exactly what the layer computes for a token with
  nothing before it in its window) → L2 norm for the delta rule → K^-½. It skips the blocks before l, whose output
  for a real query would also depend on other layers' states.
- Facts, labels recomputed from each example's meta:
  rule110 "cell_after_steps" (fact_depth t' = 0..t): every cell of every row after t' steps (periodic), one
  multi-output binary probe over all cells, accuracy averaged over cells;
  depo "successor" (fact_depth k): the k-th successor of every node of the cycle, multiclass over name tokens
  (a multi-token name is read at, and answered by, its last token; nodes sharing a last token are left out);
  gsm "value" (fact_depth = operations in the variable's ancestry): every defined variable's value mod P.
  The facts do not depend on the window probed: an earlier window's state is asked the same questions.
- Probe: logistic regression (multinomial, or one binary output per cell) on features standardised with the
  training rows' statistics, L2 weight decay, fit full-batch with preconditioned L-BFGS from zero (deterministic).
  It is fit on the training rows' principal axes (principal_coordinates): the same optimum, and with F > n_train
  (rule110's 2048 features) far fewer coordinates.
- Split by example, per seed: 70% of examples train, 30% test. acc has a bootstrap 95% interval over test examples.
- Control task (Hewitt & Liang 2019): each identity gets a fixed random label per seed, drawn from the empirical
  distribution of the true labels, fit with the same probe and split → control_acc; selectivity = acc − control_acc.
  Identities: depo the node's name, gsm the variable's name, rule110 the cell's light cone (its index and the
  2t'+1 bits of the original row that decide it; the index alone is constant per output, and a multi-output probe's
  bias fits that perfectly).
- Baselines: "pass1" rows probe the trained model's state after pass 1 (what the same weights keep without
  sleep's extra passes), "trained" its states after passes 2..N, "random_init" an untrained model of the same
  configuration (initialised with seed RANDOM_INIT_SEED; for a checkpoint trained with seed 0, the default, these are
  its own initial weights) at every pass. layer is the block's index in the stack, as in the record points.
- chance: the test accuracy of always answering the training set's majority label (per output for rule110).
- n_train, n_test: examples (not rows) on each side of the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sleepcore.checkpoint import configs_from, load_checkpoint, read_info, resolve, weights_sha256
from sleepcore.config import ModelConfig, SleepConfig
from sleepcore.data import collate
from sleepcore.model import SleepModel
from sleepcore.recorder import Recorder
from sleepcore.results import check_computed_on, read_table, redo_command, task_for
from sleepcore.tasks import Example, Task, changed_values
from sleepcore.tasks.gsm import evaluate as gsm_values
from sleepcore.tasks.rule110 import rule110_step

DATA_SEED = 4242  # the held-out examples probed; the probe seeds vary only the split and the control labels
RANDOM_INIT_SEED = 0
TRAIN_FRACTION = 0.7
WEIGHT_DECAY = 1e-3
MAX_ITER = 200  # a cap; preconditioned L-BFGS stops on the tolerances below after 10–100 iterations on the mini tasks
# Stop when the loss moves by < 1e-5 or no gradient entry exceeds 1e-4: test accuracies then differ from a fit run
# to 1e-9 by < 0.002 on the mini tasks, far inside their bootstrap intervals, at under half the time.
TOLERANCE_GRAD, TOLERANCE_CHANGE = 1e-4, 1e-5
N_BOOT = 1000

SCHEMA = {
    "checkpoint": pl.String,
    "task": pl.String,
    "fact": pl.String,
    "fact_depth": pl.Int32,
    "layer": pl.Int32,
    "pass": pl.Int32,
    "probe": pl.String,
    "seed": pl.Int32,
    "acc": pl.Float64,
    "acc_lo": pl.Float64,
    "acc_hi": pl.Float64,
    "control_acc": pl.Float64,
    "selectivity": pl.Float64,
    "baseline": pl.String,
    "n_train": pl.Int32,
    "n_test": pl.Int32,
    "chance": pl.Float64,
}
KEYS = ["fact", "fact_depth", "layer", "pass", "probe", "seed", "baseline"]
# a checkpoint's table (probe_checkpoint) also says which weights and which context window it probed (the window's
# index, counted from 0); read_probes checks both
CHECKPOINT_SCHEMA = SCHEMA | {"weights_sha256": pl.String, "window": pl.Int32}


# --- the probe ------------------------------------------------------------------------------------------------


def principal_coordinates(X: torch.Tensor, train: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row's coordinates on the principal axes of the training rows, after standardising with their statistics.

    X [n, F], train [n] bool -> (Z [n, r] float32, variance [r] of the training rows along each axis). Axes along
    which the training rows do not vary are dropped. Exact for an L2-penalised linear probe: a rotation leaves ‖W‖²
    unchanged, and the optimum has no component where every training row is zero (the representer theorem). With
    F > n_train it works from the rows' kernel, so r < n_train and nothing F × F is ever formed.
    """
    X = X.double()
    rows = torch.as_tensor(train)
    n_train = int(rows.sum())
    mean, std = X[rows].mean(0), X[rows].std(0, correction=0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature stays 0, in training and after
    Xs = (X - mean) / std
    if X.shape[1] > n_train:
        kernel = Xs @ Xs[rows].T  # [n, n_train]; its training block is the Gram matrix
        eigvals, U = torch.linalg.eigh(kernel[rows])
        keep = eigvals > 1e-10 * eigvals.max().clamp_min(1e-300)
        Z = kernel @ (U[:, keep] / eigvals[keep].sqrt())
    else:
        eigvals, V = torch.linalg.eigh(Xs[rows].T @ Xs[rows])
        keep = eigvals > 1e-10 * eigvals.max().clamp_min(1e-300)
        Z = Xs @ V[:, keep]
    # float32 from here: the fit needs no more precision and runs about twice as fast
    return Z.float(), (eigvals[keep] / n_train).float()


def fit_logistic(
    Z: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    variance: torch.Tensor,
    *,
    weight_decay: float = WEIGHT_DECAY,
    max_iter: int = MAX_ITER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on principal coordinates Z [n, r] (variance [r]): (W [r, C], b [C]).

    y [n] classes 0..n_classes−1 (multinomial), or y [n, C] in {0, 1} (C independent binary outputs).
    Loss: mean cross-entropy (summed over outputs) + weight_decay · ‖W‖²; the bias is not penalised. L-BFGS runs
    on a = W / c, with c [r] the inverse square root of each axis' approximate curvature (variance / 4 +
    2·weight_decay): the same optimum, reached in tens of iterations instead of hundreds.
    """
    n = len(Z)
    target = y.float() if y.dim() == 2 else F.one_hot(y.long(), n_classes).float()  # [n, C]
    c = (variance / 4 + 2 * weight_decay).rsqrt()[:, None]  # [r, 1]
    a = torch.zeros(Z.shape[1], target.shape[1])
    b = torch.zeros(target.shape[1])
    opt = torch.optim.LBFGS(
        [a, b],
        max_iter=max_iter,
        history_size=10,
        line_search_fn="strong_wolfe",
        tolerance_grad=TOLERANCE_GRAD,
        tolerance_change=TOLERANCE_CHANGE,
    )

    def closure() -> torch.Tensor:
        # Gradients by hand: both losses have d(loss)/d(logits) = (p − target) / n, and autograd would cost more than
        # the arithmetic at these sizes.
        W = c * a
        out = Z @ W + b
        if y.dim() == 2:
            data = F.binary_cross_entropy_with_logits(out, target, reduction="sum") / n
            err = (torch.sigmoid(out) - target) / n
        else:
            data = -(target * out.log_softmax(-1)).sum() / n
            err = (out.softmax(-1) - target) / n
        a.grad = c * (Z.T @ err + 2 * weight_decay * W)
        b.grad = err.sum(0)
        return data + weight_decay * W.pow(2).sum()

    opt.step(closure)
    return c * a, b


# --- the protocol's building blocks -----------------------------------------------------------------------------


class ProbeScore(NamedTuple):
    acc: float
    lo: float
    hi: float
    n_train: int  # examples
    n_test: int
    chance: float


def split_examples(groups: np.ndarray, seed: int, train_fraction: float = TRAIN_FRACTION) -> np.ndarray:
    """[n] bool: is row i on the training side? Whole examples (groups [n], ints >= 0) go to one side.

    Each example gets a key drawn per seed and the lowest keys train, so for one seed an example is on the same side
    in every fact set that holds it.
    """
    ids = np.unique(groups)
    if len(ids) < 2:
        raise ValueError(f"a probe needs at least 2 examples to split into train and test; got {len(ids)}")
    keys = np.random.default_rng((seed, 0)).random(int(ids.max()) + 1)[ids]
    n_train = min(len(ids) - 1, max(1, round(train_fraction * len(ids))))
    return np.isin(groups, ids[np.argsort(keys, kind="stable")[:n_train]])


def control_labels(identity: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Hewitt & Liang's control task: every identity gets one random label, drawn from the labels' distribution.

    identity, y: [n] or [n, C] ints (then per output column). Returns y's shape and dtype.
    """
    rng = np.random.default_rng((seed, 2))
    ident, labels = identity.reshape(len(identity), -1), y.reshape(len(y), -1)
    out = np.empty_like(labels)
    for col in range(labels.shape[1]):
        uniq, inverse = np.unique(ident[:, col], return_inverse=True)
        draws = labels[rng.integers(0, len(labels), size=len(uniq)), col]
        out[:, col] = draws[inverse.reshape(-1)]
    return out.reshape(y.shape)


def bootstrap_ci(correct: np.ndarray, total: np.ndarray, seed: int, n_boot: int = N_BOOT) -> tuple[float, float]:
    """95% percentile interval of sum(correct) / sum(total), resampling examples (the [G] entries) with replacement."""
    rng = np.random.default_rng((seed, 1))
    idx = rng.integers(0, len(correct), size=(n_boot, len(correct)))
    accs = correct[idx].sum(1) / np.maximum(total[idx].sum(1), 1)
    lo, hi = np.percentile(accs, [2.5, 97.5])
    return float(lo), float(hi)


def _per_example(hits: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct and total answers per example: hits [n] or [n, C] bool, groups [n] -> two [G] arrays."""
    hits = hits.reshape(len(hits), -1)
    _, g = np.unique(groups, return_inverse=True)
    return np.bincount(g, weights=hits.sum(1)), np.bincount(g, weights=np.full(len(hits), hits.shape[1]))


def _chance(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of the training majority label (per output column for a multi-output fact)."""
    if y_train.ndim == 2:
        return float(((y_train.mean(0) >= 0.5).astype(y_test.dtype) == y_test).mean())
    values, counts = np.unique(y_train, return_counts=True)
    return float((y_test == values[counts.argmax()]).mean())


def predict_probe(Z: torch.Tensor, variance: torch.Tensor, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Fit on rows `train` of principal coordinates Z [n, r] (see principal_coordinates) and predict the other rows.

    y [n] labels (any ints: the classes are the values present) or [n, C] in {0, 1}. Returns the predictions for the
    rows not in `train`, as values of y: [m] or [m, C].
    """
    rows = torch.as_tensor(train)
    if y.ndim == 2:
        W, b = fit_logistic(Z[rows], torch.as_tensor(y[train]), 2, variance)
        return ((Z[~rows] @ W + b) > 0).long().numpy().astype(y.dtype)
    values, y_idx = np.unique(y, return_inverse=True)
    W, b = fit_logistic(Z[rows], torch.as_tensor(y_idx.reshape(-1)[train]), len(values), variance)
    return values[(Z[~rows] @ W + b).argmax(-1).numpy()]


def score_probe(
    Z: torch.Tensor, variance: torch.Tensor, y: np.ndarray, groups: np.ndarray, train: np.ndarray, seed: int
) -> ProbeScore:
    """Fit on rows `train` of principal coordinates Z [n, r] (see principal_coordinates), score the other rows.

    y [n] labels (any ints: classes are the values present) or [n, C] in {0, 1}; groups [n] the example of each row.
    """
    test = ~train
    pred = predict_probe(Z, variance, y, train)
    correct, total = _per_example(pred == y[test], groups[test])
    lo, hi = bootstrap_ci(correct, total, seed)
    n_train = len(np.unique(groups[train]))
    return ProbeScore(float(correct.sum() / total.sum()), lo, hi, n_train, len(correct), _chance(y[train], y[test]))


def _arrays(X, y, groups) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    X = X if torch.is_tensor(X) else torch.as_tensor(np.asarray(X))
    y = np.asarray(y)
    return X, y, np.arange(len(y)) if groups is None else np.asarray(groups)


def fit_probe(X, y, seed: int, *, groups: np.ndarray | None = None) -> ProbeScore:
    """The protocol's probe on features X [n, F] and labels y [n] (or [n, C] in {0, 1}): split by example (groups [n];
    default: every row its own example), fit, and return the test accuracy with its bootstrap 95% interval."""
    X, y, groups = _arrays(X, y, groups)
    train = split_examples(groups, seed)
    Z, variance = principal_coordinates(X, train)
    return score_probe(Z, variance, y, groups, train, seed)


def probe_with_control(X, y, identity, seed: int, *, groups: np.ndarray | None = None) -> dict[str, float | int]:
    """fit_probe on the true labels and on the control task of `identity` (y's shape), with one split: the
    probes table's acc, acc_lo, acc_hi, control_acc, selectivity, n_train, n_test and chance."""
    X, y, groups = _arrays(X, y, groups)
    train = split_examples(groups, seed)
    Z, variance = principal_coordinates(X, train)
    true = score_probe(Z, variance, y, groups, train, seed)
    control = score_probe(Z, variance, control_labels(np.asarray(identity), y, seed), groups, train, seed)
    return {
        "acc": true.acc,
        "acc_lo": true.lo,
        "acc_hi": true.hi,
        "control_acc": control.acc,
        "selectivity": true.acc - control.acc,
        "n_train": true.n_train,
        "n_test": true.n_test,
        "chance": true.chance,
    }


# --- facts ------------------------------------------------------------------------------------------------------


@dataclass
class Facts:
    """The rows probed for one (fact, fact_depth): one row per (example, item)."""

    fact: str
    depth: int
    example: np.ndarray  # [n] which example each row belongs to
    label: np.ndarray  # [n] class (a token id or a value), or [n, C] in {0, 1} for a multi-output fact
    identity: np.ndarray  # the label's shape: the control task's identity of each label
    token: np.ndarray | None = None  # [n] the token whose readout is the feature; None: the flattened state


def task_facts(task: Task, examples: list[Example], max_depth: int | None = None) -> list[Facts]:
    """Every fact of `task` the examples define, by fact_depth up to max_depth (default: the task's max_depth)."""
    max_depth = task.max_depth if max_depth is None else max_depth
    if max_depth < 0:
        raise ValueError(f"max_fact_depth must be >= 0; got {max_depth}")
    build = {"rule110": rule110_facts, "depo": depo_facts, "gsm": gsm_facts}.get(task.name)
    if build is None:
        raise ValueError(f"no probe facts are defined for task {task.name!r}; known: rule110, depo, gsm")
    return build(task, examples, max_depth)


def _factorize(keys: list) -> np.ndarray:
    """Hashable keys -> ints, the same key the same int (in order of first appearance)."""
    index: dict = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)


def rule110_facts(task: Task, examples: list[Example], max_depth: int) -> list[Facts]:
    """cell_after_steps: for t' = 0..min(t, max_depth), all R·W cells (row-major) after t' steps."""
    rows: dict[int, list] = {}
    for e, ex in enumerate(examples):
        start = now = ex.meta["rows"]
        for t in range(min(ex.meta["t"], max_depth) + 1):
            rows.setdefault(t, []).append((e, [c for row in now for c in row], light_cones(start, t)))
            now = [rule110_step(row) for row in now]
    out = []
    for t, items in sorted(rows.items()):
        e, cells, cones = zip(*items)
        identity = _factorize([c for cs in cones for c in cs]).reshape(len(items), -1)
        out.append(Facts("cell_after_steps", t, np.array(e), np.array(cells, dtype=np.int64), identity))
    return out


def light_cones(rows: list[list[int]], t: int) -> list[tuple]:
    """Per cell, row-major: (row, cell, the 2t+1 bits of the starting row that decide the cell after t steps)."""
    W = len(rows[0])
    return [(r, i, tuple(row[(i + j) % W] for j in range(-t, t + 1))) for r, row in enumerate(rows) for i in range(W)]


def depo_facts(task: Task, examples: list[Example], max_depth: int) -> list[Facts]:
    """successor: for k = 1..max_depth, the k-th successor of every node (both as their last name token)."""
    rows: dict[int, list] = {}
    for e, ex in enumerate(examples):
        cycle = ex.meta["cycle"]
        last = [name.split("_")[-1] for name in cycle]
        for i, name in enumerate(cycle):
            if last.count(last[i]) > 1:  # two nodes read the same token: no feature tells them apart
                continue
            for k in range(1, max_depth + 1):
                succ = last[(i + k) % len(cycle)]
                rows.setdefault(k, []).append((e, task.vocab[last[i]], task.vocab[succ], name))
    return [_token_facts("successor", k, items) for k, items in sorted(rows.items())]


def gsm_facts(task: Task, examples: list[Example], max_depth: int) -> list[Facts]:
    """value: every defined variable's value mod P, by the number of operations in its ancestry."""
    rows: dict[int, list] = {}
    for e, ex in enumerate(examples):
        equations = ex.meta["equations"]
        values = gsm_values(equations, ex.meta["modulus"])
        for eq in equations:
            var = eq["var"]
            depth = task.operations({"question": var, "equations": equations})
            if depth <= max_depth:
                rows.setdefault(depth, []).append((e, task.vocab[var], values[var], var))
    return [_token_facts("value", d, items) for d, items in sorted(rows.items())]


def _token_facts(fact: str, depth: int, items: list[tuple[int, int, int, str]]) -> Facts:
    """Facts read at a token from rows (example, token id, label, identity)."""
    e, tok, label, ident = zip(*items)
    return Facts(fact, depth, np.array(e), np.array(label, dtype=np.int64), _factorize(list(ident)), np.array(tok))


# --- features -------------------------------------------------------------------------------------------------


def context_window(task: Task, window: int) -> int:
    """The index of context window `window` (Python-style: −1 is the last one)."""
    n = task.context_windows
    if not -n <= window < n:
        raise ValueError(f"window must pick one of the {n} context window(s), -{n}..{n - 1}; got {window}")
    return window % n


@torch.no_grad()
def record_states(
    model: SleepModel, examples: list[Example], window: int, batch_size: int = 128
) -> dict[tuple[int, int], torch.Tensor]:
    """{(layer, pass): S [E, H, K, V]} after each pass over context window `window` (an index >= 0).

    The model runs only on windows 0..window, all context, so it sleeps N passes on each and never reaches the queries.
    """
    L = model.sleep.window
    end = (window + 1) * L
    pattern = f"window.{window}/pass.*/layer.*/fw.state"
    parts: dict[tuple[int, int], list[torch.Tensor]] = {}
    model.eval()
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size])
        rec = Recorder(include=[pattern])
        model(batch["tokens"][:, :end], torch.zeros_like(batch["loss_mask"][:, :end]), rec=rec)
        for name, S in rec.store.items():
            _, p, layer, _ = name.split("/")
            parts.setdefault((int(layer.split(".")[1]), int(p.split(".")[1])), []).append(S.float())
    return {key: torch.cat(v) for key, v in sorted(parts.items())}


@torch.no_grad()
def token_queries(model: SleepModel, layer: int) -> torch.Tensor:
    """[vocab, H, K]: layer `layer`'s query for every token alone at position 0 of a window (see the module doc)."""
    block = model.blocks[layer]
    fw, cfg = block.mixer, model.cfg
    H, K = cfg.fw_heads, cfg.head_dim
    tokens = torch.arange(cfg.vocab_size)[:, None]  # [vocab, 1]: one-token windows
    x = block.norm1(model.embed(tokens))  # [vocab, 1, D]
    q = fw.q(x)
    if cfg.conv_size:  # the conv and SiLU the layer applies, on this one-token input
        qkv = fw.conv(torch.cat([q, fw.k(x), fw.v(x)], -1).transpose(1, 2))[..., :1].transpose(1, 2)
        q = F.silu(qkv)[..., : H * K]
    q = q.view(-1, H, K)
    if cfg.rule == "delta":
        q = F.normalize(q, dim=-1)
    return q * K**-0.5


def features(S: torch.Tensor, facts: Facts, queries: torch.Tensor | None) -> torch.Tensor:
    """[n, F] features of the fact rows from states S [E, H, K, V]: S flattened (H·K·V), or Sᵀ q(token) (H·V)."""
    S = S[torch.as_tensor(facts.example)]
    if facts.token is None:
        return S.flatten(1)
    return torch.einsum("nhkv,nhk->nhv", S, queries[torch.as_tensor(facts.token)]).flatten(1)


# --- the whole protocol --------------------------------------------------------------------------------------------


def random_model(model_cfg: ModelConfig, sleep_cfg: SleepConfig, seed: int = RANDOM_INIT_SEED) -> SleepModel:
    """An untrained model of the same configuration; the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SleepModel(model_cfg, sleep_cfg).eval()


# The most examples probed: every pass's state of every fast-weight layer is kept for each (64 KB at the mini shapes,
# so 1 GB at the cap); the shipped probes use 4,096.
MAX_PROBE_EXAMPLES = 16_384


def check_probe_count(examples: int, flag: str = "examples") -> None:
    """ValueError unless 2 <= examples <= MAX_PROBE_EXAMPLES."""
    if examples < 2:
        raise ValueError(f"{flag} must be >= 2 (they are split into train and test); got {examples}")
    if examples > MAX_PROBE_EXAMPLES:
        raise ValueError(
            f"{flag} must be at most {MAX_PROBE_EXAMPLES:,} (every pass's fast-weight state of each is kept; the "
            f"shipped probes use 4,096); got {examples:,}"
        )


def probe_models(
    models: dict[str, SleepModel],
    task: Task,
    *,
    checkpoint: str = "",
    examples: int = 512,
    seeds: tuple[int, ...] = (0, 1, 2),
    window: int = -1,
    max_fact_depth: int | None = None,
    progress: bool = True,
) -> pl.DataFrame:
    """The probes table for models named by baseline ("trained", "random_init"); a "trained" model's pass-1 rows
    are labelled "pass1". Columns and dtypes: SCHEMA; sorted by KEYS."""
    check_probe_count(examples)
    if not seeds:
        raise ValueError("give at least one seed")
    w = context_window(task, window)
    sample = task.sample(examples, seed=DATA_SEED, split="test")
    # a fact set needs examples on both sides of the split
    fact_sets = [f for f in task_facts(task, sample, max_fact_depth) if len(np.unique(f.example)) >= 2]
    rows: list[dict] = []
    for baseline, model in models.items():
        if model.sleep.window is None or "fw" not in model.cfg.mixers:
            raise ValueError("probes need a model under eviction with fast-weight layers (a hybrid)")
        states = record_states(model, sample, w)
        queries = {layer: token_queries(model, layer) for layer, _ in states}
        bar = tqdm(
            total=len(fact_sets) * len(states) * len(seeds), desc=f"probe {baseline}", disable=not progress, leave=False
        )
        for facts in fact_sets:
            for (layer, p), S in states.items():
                X = features(S, facts, queries[layer] if facts.token is not None else None)
                for seed in seeds:
                    bar.update()
                    score = probe_with_control(X, facts.label, facts.identity, seed, groups=facts.example)
                    label = "pass1" if baseline == "trained" and p == 1 else baseline
                    rows.append(_row(checkpoint, task.name, facts, layer, p, seed, label, score))
        bar.close()
    return pl.DataFrame(rows, schema=SCHEMA).sort(KEYS)


def _row(checkpoint: str, task: str, facts: Facts, layer: int, p: int, seed: int, baseline: str, score: dict) -> dict:
    return {
        "checkpoint": checkpoint,
        "task": task,
        "fact": facts.fact,
        "fact_depth": facts.depth,
        "layer": layer,
        "pass": p,
        "probe": "linear",
        "seed": seed,
        "baseline": baseline,
        **score,
    }


def probe_checkpoint(
    name_or_path: str | Path,
    *,
    examples: int = 512,
    seeds: tuple[int, ...] = (0, 1, 2),
    window: int = -1,
    max_fact_depth: int | None = None,
    progress: bool = True,
    task_changes: dict | None = None,
) -> pl.DataFrame:
    """The probes table of a checkpoint (folder or name under checkpoints/): its trained model and the random-init
    baseline, on `examples` held-out examples, one row per fact × fact_depth × layer × pass × baseline × seed: the
    SCHEMA columns, `weights_sha256` (the SHA-256 of the model.safetensors probed) and `window` (the index of the
    context window probed); CHECKPOINT_SCHEMA.
    `task_changes` ({setting: value}): the examples come from its task with these settings changed
    (results.task_for), and the table gains a `task_changed` column saying so (`setting=value, ...`)."""
    model, info = load_checkpoint(name_or_path)
    sha256 = weights_sha256(name_or_path)
    model_cfg, sleep_cfg = configs_from(info)[:2]
    task, changed = task_for(info, task_changes)
    table = probe_models(
        {"trained": model, "random_init": random_model(model_cfg, sleep_cfg)},
        task,
        checkpoint=resolve(name_or_path).name,
        examples=examples,
        seeds=tuple(seeds),
        window=window,
        max_fact_depth=max_fact_depth,
        progress=progress,
    )
    table = table.with_columns(weights_sha256=pl.lit(sha256), window=pl.lit(context_window(task, window), pl.Int32))
    return table.with_columns(task_changed=pl.lit(changed_values(changed))) if changed else table


def format_probes(df: pl.DataFrame) -> str:
    """A compact text summary: per fact, acc (mean over seeds) by fact_depth × layer/pass, and the random-init acc
    at the last pass ("rand") per layer."""
    if df.is_empty():
        return "no probe rows"
    changed = df["task_changed"].unique().to_list() if "task_changed" in df.columns else []
    lines = [f"on a changed task: {'; '.join(map(str, changed))}"] if changed else []
    mean = df.group_by(["fact", "fact_depth", "layer", "pass", "baseline"]).agg(
        pl.col("acc").mean(), pl.col("chance").mean()
    )
    for fact in sorted(mean["fact"].unique()):
        part = mean.filter(pl.col("fact") == fact)
        layers, passes = sorted(part["layer"].unique()), sorted(part["pass"].unique())
        trained = part.filter(pl.col("baseline") != "random_init")
        rand = part.filter((pl.col("baseline") == "random_init") & (pl.col("pass") == passes[-1]))
        cols = [f"l{layer}/p{p}" for layer in layers for p in passes] + [f"l{layer}/rand" for layer in layers]
        lines += [
            f"{fact}: probe accuracy (mean over seeds); l = layer, p = pass, rand = random init at pass {passes[-1]}"
        ]
        lines.append(f"{'depth':>5} {'chance':>6}  " + " ".join(f"{c:>7}" for c in cols))
        for d in sorted(part["fact_depth"].unique()):
            acc = {
                (r["layer"], r["pass"]): r["acc"]
                for r in trained.filter(pl.col("fact_depth") == d).iter_rows(named=True)
            }
            racc = {r["layer"]: r["acc"] for r in rand.filter(pl.col("fact_depth") == d).iter_rows(named=True)}
            chance = part.filter(pl.col("fact_depth") == d)["chance"].mean()
            cells = [acc.get((layer, p)) for layer in layers for p in passes] + [racc.get(layer) for layer in layers]
            lines.append(
                f"{d:>5} {chance:>6.3f}  " + " ".join(f"{c:>7.3f}" if c is not None else f"{'—':>7}" for c in cells)
            )
        lines.append("")
    return "\n".join(lines).rstrip()


# --- a probes table shipped beside a checkpoint -----------------------------------------------------------------
PROBES_FILE = "probes.parquet"


def read_probes(folder: str | Path) -> pl.DataFrame | None:
    """The probes table shipped beside a checkpoint as probes.parquet (`sleepcore probe NAME --out
    checkpoints/NAME/probes.parquet`), cast to SCHEMA, or None where none ships.

    ValueError, with the command that rewrites it, for a file that is not a readable probes table of this checkpoint
    (damaged, of another task, on a changed task, or computed on other weights than its model.safetensors);
    CheckpointError (a ValueError) naming the weights where it is they that are damaged.
    """
    folder = Path(folder)
    path = folder / PROBES_FILE
    if not path.is_file():
        return None
    redo = (
        f"write it again with: {redo_command('probe', folder, PROBES_FILE)}, adding the --examples and --seeds it "
        "was made with (beside its numbers in the README or checkpoints/NOTES)"
    )
    table = read_table(path, SCHEMA, "probes table", redo)
    if "task_changed" in table.columns and table["task_changed"].null_count() < table.height:
        changed = table["task_changed"].drop_nulls().unique().to_list()
        raise ValueError(
            f"{path} was computed on a changed task ({'; '.join(changed)}), not the one {folder.name} was trained "
            f"on; keep such a table elsewhere; {redo}"
        )
    task = task_for(read_info(folder), None)[0]
    if (tasks := table["task"].unique().to_list()) != [task.name]:  # copied from another checkpoint: not its facts
        raise ValueError(
            f"{path} holds probes of task {', '.join(map(str, tasks))}, and {folder.name} is a {task.name} model; "
            f"{redo}"
        )
    said = {"weights_sha256": "which weights it was computed on", "window": "which context window it probed"}
    for column, what in said.items():
        if column not in table.columns:
            raise ValueError(
                f"{path} does not say {what} (no {column} column: a table from before probe tables carried it, or "
                f"not one from sleepcore probe); {redo}"
            )
        if table[column].dtype != CHECKPOINT_SCHEMA[column]:
            raise ValueError(
                f"{path} is not a probes table ({column} is {table[column].dtype}, not {CHECKPOINT_SCHEMA[column]}); "
                f"{redo}"
            )
        if table[column].null_count() or table[column].n_unique() != 1:
            raise ValueError(f"{path} mixes probes of several {column} values; {redo}")
    last = task.context_windows - 1
    if table["window"][0] != last:
        raise ValueError(
            f"{path} holds probes of context window {table['window'][0]}, and a checkpoint's own probes are of its "
            f"last, {last}: keep such a table elsewhere; {redo}"
        )
    check_computed_on(folder, table["weights_sha256"][0], path, redo)
    return table
