"""Rule 110: predict cells of R random W-bit rows after t steps of the Rule 110 cellular automaton.

Layout (window L = W + 1):
    context, R windows:  t{t} b_0 … b_{W-1}       one row per window, each announcing the step count t
    query windows:       ? ? …  <pad> …            first-bit mode: R `?`, the i-th predicts cell 0 of row i;
                                                   whole_rows: R*W `?`, row-major, predicting every cell
Rule 110 with periodic wrap: new cell = f(left, centre, right), 111→0 110→1 101→1 100→0 011→1 010→1 001→1 000→0.
meta: {"rows": [[0/1, …], …], "t": t, "whole_rows": bool}.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sleepcore.tasks.base import Task, Vocab, check_int

RULE110 = {
    (1, 1, 1): 0, (1, 1, 0): 1, (1, 0, 1): 1, (1, 0, 0): 0,
    (0, 1, 1): 1, (0, 1, 0): 1, (0, 0, 1): 1, (0, 0, 0): 0,
}  # fmt: skip


def rule110_step(row: list[int]) -> list[int]:
    """One Rule 110 step with periodic wrap (row[-1] is the left neighbour of cell 0)."""
    W = len(row)
    return [RULE110[(row[i - 1], row[i], row[(i + 1) % W])] for i in range(W)]


class Rule110(Task):
    name = "rule110"
    # judged by every answer of a sequence right: whole rows where rows are asked whole (whole_rows, the shipped
    # presets), the paper's measure and the issue's
    judged_on = ("exact", "answers")
    DEFAULTS = {
        "W": 24,
        "R": 4,
        "min_depth": 1,
        "max_depth": 32,
        "depths": (4, 8, 12, 16, 20, 24, 28, 32),
        "whole_rows": False,
    }

    def __init__(self, **params):
        super().__init__(**params)
        self.W = check_int(self.params, "W", 3)
        self.R = check_int(self.params, "R", 1)
        self.whole_rows = self.params["whole_rows"]
        if not isinstance(self.whole_rows, bool):
            raise ValueError(f"whole_rows must be true or false, got {self.whole_rows!r}")
        self.vocab = Vocab(["<pad>", "0", "1", "?"] + [f"t{t}" for t in range(1, self.max_depth + 1)])
        self.window = self.W + 1
        self.context_windows = self.R
        self.n_queries = self.R * self.W if self.whole_rows else self.R
        self.seq_len = (self.R + -(-self.n_queries // self.window)) * self.window

    def _generate(self, rng: random.Random, pick_depth: Callable[[], int]) -> tuple[dict, list[int]]:
        # The generator steps rows packed into ints (bit i = cell i) with bitwise Rule 110:
        # new = (centre | right) & ~(left & centre & right), which matches the table in RULE110.
        W, mask = self.W, (1 << self.W) - 1
        xs = [rng.getrandbits(W) for _ in range(self.R)]
        t = pick_depth()
        rows = [[(x >> i) & 1 for i in range(W)] for x in xs]
        for _ in range(t):
            lefts = [((x << 1) | (x >> (W - 1))) & mask for x in xs]  # bit i holds cell i-1
            rights = [(x >> 1) | ((x & 1) << (W - 1)) for x in xs]  # bit i holds cell i+1
            xs = [(x | r) & ~(lf & x & r) & mask for x, lf, r in zip(xs, lefts, rights)]
        cells = [(x >> i) & 1 for x in xs for i in range(W)] if self.whole_rows else [x & 1 for x in xs]
        meta = {"rows": rows, "t": t, "whole_rows": self.whole_rows}
        return meta, [self.vocab[str(c)] for c in cells]

    def _words(self, meta: dict) -> tuple[list[str], list[int], list[int]]:
        words = []
        for row in meta["rows"]:
            words += [f"t{meta['t']}"] + [str(b) for b in row]
        scored = list(range(len(words), len(words) + self.n_queries))
        words += ["?"] * self.n_queries
        words += ["<pad>"] * (self.seq_len - len(words))
        return words, scored, [meta["t"]] * len(scored)

    def _read(self, words: list[str]) -> dict:
        rows, t = [], None
        for w in range(self.R):
            start = w * self.window
            head = words[start]
            if not (head.startswith("t") and head[1:].isdigit()):
                raise ValueError(
                    f"{self.at(start)}: expected the step token t1…t{self.max_depth} "
                    f"starting context window {w}, got {head!r}"
                )
            if t is not None and int(head[1:]) != t:
                raise ValueError(
                    f"{self.at(start)}: context window {w} announces {head} but window 0 "
                    f"announces t{t}; every context window must announce the same t"
                )
            t = int(head[1:])
            for i in range(start + 1, start + self.window):
                if words[i] not in ("0", "1"):
                    raise ValueError(f"{self.at(i)}: expected a bit 0 or 1 in the row of window {w}, got {words[i]!r}")
            rows.append([int(b) for b in words[start + 1 : start + self.window]])
        return {"rows": rows, "t": t, "whole_rows": self.whole_rows}

    def key(self, meta: dict) -> str:
        return "|".join("".join(map(str, row)) for row in meta["rows"])

    def recompute(self, meta: dict) -> list[int]:
        rows = meta["rows"]
        for _ in range(meta["t"]):
            rows = [rule110_step(row) for row in rows]
        cells = [c for row in rows for c in row] if meta["whole_rows"] else [row[0] for row in rows]
        return [self.vocab[str(c)] for c in cells]

    def chance(self, depth: int) -> float:
        """The best a model that cannot see the rows can do per cell: always answer the more common bit after
        `depth` steps (Rule 110 makes ones more common: 5/8 after one step). Estimated on 4,096 fixed random rows."""
        rng = random.Random(110)
        ones = total = 0
        for _ in range(4096):
            row = [rng.getrandbits(1) for _ in range(self.W)]
            for _ in range(depth):
                row = rule110_step(row)
            ones += sum(row)
            total += self.W
        return max(ones, total - ones) / total
