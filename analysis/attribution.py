"""Which evicted tokens does an answer come from? Integrated gradients through the sleep passes.

For each scored position of an example and each n (sleep truncated at n passes on every context window), captum's
IntegratedGradients attributes the answer's logit (the logit of the target token) to the token embeddings of
every input position. The baseline is the `<pad>` embedding (id 0) at every position, so padding gets exactly
zero and the attributions over all positions sum to logit(input) − logit(baseline), up to captum's convergence
delta. Only positions in evicted (context) windows are reported: the wake window is still in the KV cache.

The attributions table has the columns of docs/TRACE_SCHEMA.md, then two more that make it self-contained for
`path_recall`: `depth` (the answer's depth) and `edge` (Depo: index of the source token's edge in meta["edges"],
−1 for padding and for other tasks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import torch
from captum.attr import IntegratedGradients

from sleepcore.tasks import Example, Task

PAD = 0  # the baseline token id: `<pad>` in every task's vocabulary

SCHEMA = {
    "example": pl.Int32,
    "position": pl.Int32,
    "n": pl.Int32,
    "source_position": pl.Int32,
    "source_window": pl.Int32,
    "token": pl.String,
    "attribution": pl.Float64,
    "delta": pl.Float64,
    "on_path": pl.Boolean,
    "depth": pl.Int32,
    "edge": pl.Int32,
}
KEYS = ["example", "position", "n", "source_position"]


# --- integrated gradients ------------------------------------------------------------------------------------


@contextmanager
def _inference_only(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients (IG needs input gradients only; weight gradients would double backward)."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def integrated_gradients(
    model: torch.nn.Module,
    example: Example,
    positions: Sequence[int],
    passes: int,
    *,
    n_steps: int = 32,
    internal_batch_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IG of logit[position, target[position]] w.r.t. every input token embedding, with sleep truncated at `passes`.

    Returns (attr [P, T], delta [P]): attributions summed over the embedding dimension for each of the P positions,
    over all T input positions (wake window included), and captum's convergence delta per position.
    """
    _check_steps(n_steps, internal_batch_size)
    scored = [p for p, m in enumerate(example.loss_mask) if m]
    bad = [p for p in positions if p not in scored]
    if bad:
        raise ValueError(f"positions {bad} are not scored; an answer logit exists only at scored positions: {scored}")
    device = next(model.parameters()).device
    tokens = torch.tensor([example.tokens], device=device)  # [1, T]
    mask = torch.tensor([example.loss_mask], device=device)  # [1, T]

    def forward(embeds: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> logits [B, T, vocab]
        B = embeds.shape[0]
        return model(tokens.expand(B, -1), mask.expand(B, -1), passes=passes, embeds=embeds).logits

    ig = IntegratedGradients(forward)
    attrs, deltas = [], []
    with _inference_only(model):
        embeds = model.tok(tokens)  # [1, T, D]
        baseline = model.tok.weight[PAD].expand_as(embeds)  # [1, T, D]
        # captum splits n_steps into internal batches of internal_batch_size // P steps: keep P small enough for 2.
        for chunk in _chunks(list(positions), internal_batch_size // 2):
            P = len(chunk)
            attr, delta = ig.attribute(
                embeds.expand(P, -1, -1),
                baselines=baseline.expand(P, -1, -1),
                target=[(p, example.targets[p]) for p in chunk],
                n_steps=n_steps,
                internal_batch_size=internal_batch_size,
                return_convergence_delta=True,
            )
            attrs.append(attr.sum(-1).detach())  # [P, T]
            deltas.append(delta.detach())
    if not attrs:
        return torch.zeros(0, len(example.tokens)), torch.zeros(0)
    return torch.cat(attrs).cpu(), torch.cat(deltas).cpu()


def _check_steps(n_steps: int, internal_batch_size: int) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps (--n-steps: integration steps) must be an integer >= 1, such as 32; got {n_steps!r}")
    if internal_batch_size < 2:
        raise ValueError(
            f"internal_batch_size (--internal-batch-size) must be >= 2 (two IG steps per batch at least); "
            f"got {internal_batch_size}"
        )


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- the attributions table ----------------------------------------------------------------------------------


def context_positions(model: torch.nn.Module, example: Example) -> list[tuple[int, int]]:
    """(position, window) of every token in a window the model sleeps on and evicts: one with no scored position."""
    out = []
    for w, (s, e) in enumerate(model.windows(len(example.tokens))):
        if not any(example.loss_mask[s:e]):
            out += [(i, w) for i in range(s, e)]
    return out


def attribute(
    model: torch.nn.Module,
    examples: Sequence[Example],
    task: Task,
    *,
    n_steps: int = 32,
    internal_batch_size: int = 16,
    passes: int | Iterable[int] | None = None,
    positions: Sequence[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """The attributions table: one row per (example, scored position, n, evicted source position).

    passes: the n to truncate sleep at (an int or several); None = 1..N, N the model's trained passes.
    positions: scored positions to attribute (the same for every example); None = all of each example's.
    progress: called with 1 after each (example, n), for a progress bar.
    """
    ns = _passes(model, passes)
    rows: dict[str, list] = {c: [] for c in SCHEMA}
    for i, ex in enumerate(examples):
        scored = [p for p, m in enumerate(ex.loss_mask) if m]
        chosen = scored if positions is None else list(positions)
        depth = dict(zip(scored, ex.depth))
        sources = context_positions(model, ex)
        words = task.vocab.decode(ex.tokens)
        edge_of, path = depo_paths(task, ex) if task.name == "depo" else (None, None)
        for n in ns:
            attr, delta = integrated_gradients(
                model, ex, chosen, n, n_steps=n_steps, internal_batch_size=internal_batch_size
            )
            for j, p in enumerate(chosen):
                for s, w in sources:
                    rows["example"].append(i)
                    rows["position"].append(p)
                    rows["n"].append(n)
                    rows["source_position"].append(s)
                    rows["source_window"].append(w)
                    rows["token"].append(words[s])
                    rows["attribution"].append(float(attr[j, s]))
                    rows["delta"].append(float(delta[j]))
                    rows["on_path"].append(None if path is None else edge_of[s] in path[p])
                    rows["depth"].append(depth[p])
                    rows["edge"].append(-1 if edge_of is None else edge_of[s])
            if progress is not None:
                progress(1)
    return pl.DataFrame(rows, schema=SCHEMA).sort(KEYS)


def _passes(model: torch.nn.Module, passes: int | Iterable[int] | None) -> list[int]:
    """The n to run, sorted, each once: 1..N by default. An n above the trained N runs more passes than trained
    (the last pass's parameters repeat), as a test-time sweep does."""
    from sleepcore.results import MAX_PASSES

    ns = list(range(1, model.sleep.passes + 1)) if passes is None else [passes] if isinstance(passes, int) else passes
    ns = sorted(set(ns))
    if not ns or ns[0] < 1:
        raise ValueError(f"passes must be >= 1; got {ns}")
    if ns[-1] > MAX_PASSES:
        raise ValueError(f"passes must be at most {MAX_PASSES}; got {ns}")
    return ns


# --- Depo: the true k-hop path -------------------------------------------------------------------------------


def depo_paths(task: Task, example: Example) -> tuple[list[int], dict[int, set[int]]]:
    """Where the edges are and which of them each answer's k-hop path walks.

    Returns (edge_of, path): edge_of[t] is the index in meta["edges"] of the edge whose tokens include position t
    (−1 for padding and query windows); path[p], for every scored position p, is the set of edge indices
    q→s(q), s(q)→s²(q), …, s^(k−1)(q)→s^k(q) of its query (k, q).
    """
    meta = example.meta
    edge_of = [-1] * len(example.tokens)
    flat = [(j, tok) for j, edge in enumerate(meta["edges"]) for name in edge for tok in name.split("_")]
    start = task.context_windows * task.window - len(flat)  # the context is left-padded
    for offset, (j, tok) in enumerate(flat):
        t = start + offset
        if task.vocab.tokens[example.tokens[t]] != tok:
            raise ValueError(
                f"{task.at(t)}: expected edge token {tok!r} from meta; the example does not match its meta"
            )
        edge_of[t] = j
    index = {x: j for j, (x, _) in enumerate(meta["edges"])}  # an edge by its source: out-degree is 1 on a cycle
    succ = dict(meta["edges"])
    scored = iter(p for p, m in enumerate(example.loss_mask) if m)
    path: dict[int, set[int]] = {}
    for query in meta["queries"]:
        walked, node = set(), query["q"]
        for _ in range(query["k"]):
            walked.add(index[node])
            node = succ[node]
        for _ in query["a"].split("_"):  # each token of a multi-token answer is scored but the last, plus <ans>
            path[next(scored)] = walked
    return edge_of, path


def path_recall(df: pl.DataFrame, *, draws: int = 200, seed: int = 0) -> pl.DataFrame:
    """Per (n, depth): the share of absolute attribution on the true path's tokens, against two baselines.

    For each answer: path_share = Σ|attr| over path-edge tokens / Σ|attr| over all evicted tokens;
    uniform_share = path edges / all edges (attribution spread evenly over edges); random_share = the same
    statistic as path_share for a random set of as many edges as the path has (mean over `draws` sets), which
    keeps the answer's real concentration of attribution. Columns: n, depth, answers, then each share's mean over
    answers with a 95% bootstrap interval (path_share_lo/hi, random_share_lo/hi). Needs a Depo attributions table.
    """
    missing = {"depth", "edge", "on_path"} - set(df.columns)
    if missing:
        raise ValueError(f"path_recall needs the columns {sorted(missing)} that `attribute` writes")
    if df["edge"].max() is None or df["edge"].max() < 0:
        raise ValueError("path_recall needs a Depo attributions table (no source token lies on an edge)")
    rng = np.random.default_rng(seed)
    per_answer = [_answer_shares(group, draws, rng) for group in df.partition_by(["example", "position", "n"])]
    answers = pl.DataFrame([a for a in per_answer if a is not None]).sort("n", "depth")
    rows = []
    for (n, depth), group in answers.group_by(["n", "depth"], maintain_order=True):
        row = {"n": n, "depth": depth, "answers": group.height}
        for col in ("path_share", "random_share"):
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = _mean_ci(group[col].to_numpy(), rng)
        row["uniform_share"] = float(group["uniform_share"].mean())
        rows.append(row)
    return pl.DataFrame(rows).cast({"n": pl.Int32, "depth": pl.Int32, "answers": pl.Int32})


def _answer_shares(group: pl.DataFrame, draws: int, rng: np.random.Generator) -> dict | None:
    """The three shares of one answer's attributions (rows: its evicted source tokens), or None if all are zero."""
    mag = group["attribution"].abs().to_numpy()
    total = mag.sum()
    on_edges = group.filter(pl.col("edge") >= 0)
    per_edge = on_edges.group_by("edge").agg(pl.col("attribution").abs().sum(), pl.col("on_path").any())
    E, m = per_edge.height, int(per_edge["on_path"].sum())
    if total == 0 or E == 0:
        return None
    weights = per_edge["attribution"].to_numpy()
    subsets = np.argsort(rng.random((draws, E)), axis=1)[:, :m]  # [draws, m]: random m-edge sets
    return {
        "n": group["n"][0],
        "depth": group["depth"][0],
        "path_share": float(mag[group["on_path"].to_numpy()].sum() / total),
        "uniform_share": m / E,
        "random_share": float(weights[subsets].sum(axis=1).mean() / total),
    }


def _mean_ci(values: np.ndarray, rng: np.random.Generator, resamples: int = 1000) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval."""
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


# --- a checkpoint's attributions, for the command line --------------------------------------------------------


MAX_EXAMPLES = 1024  # attributions run n_steps backward passes per answer and per n: seconds an example on a CPU


def attribute_checkpoint(
    name_or_path: str | Path,
    *,
    examples: int = 16,
    seed: int = 0,
    passes: Iterable[int] | None = None,
    n_steps: int = 32,
    internal_batch_size: int = 16,
    progress: bool = True,
) -> pl.DataFrame:
    """The attributions table of a checkpoint (folder, or name under checkpoints/) on `examples` held-out
    examples drawn with `seed`, for sleep truncated at each n in `passes` (default 1..N)."""
    from tqdm import tqdm

    from sleepcore.checkpoint import configs_from, load_checkpoint
    from sleepcore.tasks import get_task

    if not 1 <= examples <= MAX_EXAMPLES:
        raise ValueError(
            f"examples must be from 1 to {MAX_EXAMPLES} (each costs n_steps backward passes per n); got {examples}"
        )
    _check_steps(n_steps, internal_batch_size)
    model, info = load_checkpoint(name_or_path)
    task_cfg = configs_from(info)[2]
    task = get_task(task_cfg.name, **task_cfg.params)
    chosen = task.sample(examples, seed, split="test")
    ns = _passes(model, passes)
    with tqdm(total=len(chosen) * len(ns), desc="attributions", unit="run", disable=not progress) as bar:
        return attribute(
            model,
            chosen,
            task,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            passes=ns,
            progress=bar.update,
        )


def format_attributions(df: pl.DataFrame) -> str:
    """Per (n, depth): answers, the mean total |attribution| over evicted tokens and the mean |convergence delta|
    of captum (both in logits); for Depo, then, the path-recall table (path share against random edges)."""
    if df.is_empty():
        return "no attribution rows"
    per_answer = df.group_by(["example", "position", "n", "depth"]).agg(
        pl.col("attribution").abs().sum().alias("total"), pl.col("delta").abs().first().alias("delta")
    )
    summary = (
        per_answer.group_by(["n", "depth"])
        .agg(
            pl.len().alias("answers"),
            pl.col("total").mean().alias("mean_total_abs"),
            pl.col("delta").mean().alias("mean_abs_delta"),
        )
        .sort("n", "depth")
    )
    lines = ["attributions over evicted tokens, per sleep truncated at n and answer depth", _text(summary)]
    if df["edge"].max() is not None and df["edge"].max() >= 0:
        recall = path_recall(df)
        lines += [
            "",
            "Depo path recall: share of |attribution| on the true k-hop path's edges (95% bootstrap interval),",
            "against the same share for a random set of as many edges (random) and an even spread (uniform)",
            _text(
                recall.select(
                    "n",
                    "depth",
                    "answers",
                    "path_share",
                    "path_share_lo",
                    "path_share_hi",
                    "random_share",
                    "uniform_share",
                )
            ),
        ]
    return "\n".join(lines)


def _text(df: pl.DataFrame) -> str:
    from sleepcore.bench import table

    return table(df.to_dicts(), df.columns)
