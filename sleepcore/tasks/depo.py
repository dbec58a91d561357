"""Depo (Allen-Zhu, Physics of Language Models 4.1): k-hop successors on one shuffled directed cycle.

Layout (window L = `window`):
    context, `context_windows` windows:  <pad> … x1 y1 x2 y2 …     the n edges `x y` of a cycle, shuffled,
                                                                  left-padded; query-agnostic
    query windows:  <q{k}> q <ans> a  <q{k}> q <ans> a … <pad> …  `queries` queries, a = k-th successor of q;
                                                                  a query never straddles a window boundary
Scored: the `<ans>` position predicts the first token of a, each token of a but the last predicts the next;
depth k for each. Names: with name_tokens=1 one token `n{i}`; otherwise ℓ ∈ [1, name_tokens] tokens, ℓ−1 from
the pool `a{i}` and the last from `z{i}`, so name boundaries are unambiguous.
meta: {"cycle": [names in cycle order, starting at the first edge's source], "edges": [[x, y], …] as shown,
"queries": [{"k": k, "q": name, "a": name}, …]}; a multi-token name is one string, tokens joined by "_".
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sleepcore.tasks.base import Example, Task, Vocab, check_int


class Depo(Task):
    name = "depo"
    shows_answers = True
    DEFAULTS = {
        "n_min": 4,
        "n_max": 75,
        "names": 100,
        "name_tokens": 2,
        "context_windows": 4,
        "window": 75,
        "queries": 10,
        "min_depth": 1,
        "max_depth": 16,
        "depths": (1, 2, 4, 8, 16),
    }

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        self.n_min = check_int(p, "n_min", 2)
        self.n_max = check_int(p, "n_max", self.n_min, "n_min")
        self.names = check_int(p, "names", 1)
        self.name_tokens = m = check_int(p, "name_tokens", 1)
        self.context_windows = check_int(p, "context_windows", 1)
        self.window = check_int(p, "window", 1)
        self.queries = check_int(p, "queries", 1)
        if sum(self.names**ell for ell in range(1, m + 1)) < self.n_max:
            raise ValueError(
                f"names={self.names} with name_tokens={m} gives fewer than n_max={self.n_max} distinct names"
            )
        context = self.context_windows * self.window
        if 2 * self.n_max * m > context:
            raise ValueError(
                f"the largest context ({self.n_max} edges of up to {2 * m} tokens = "
                f"{2 * self.n_max * m} tokens) does not fit in context_windows * window = {context}"
            )
        longest = 2 + 2 * m
        if longest > self.window:
            raise ValueError(f"a query takes up to {longest} tokens, more than window={self.window}")
        per_window = self.window // longest  # next-fit packing puts at least this many in every full window
        self.seq_len = (self.context_windows + -(-self.queries // per_window)) * self.window
        self.first_tokens = [f"a{i}" for i in range(self.names)] if m > 1 else []
        self.last_tokens = [f"{'z' if m > 1 else 'n'}{i}" for i in range(self.names)]
        self.q_tokens = [f"<q{k}>" for k in range(1, self.max_depth + 1)]
        self.vocab = Vocab(["<pad>", "<ans>"] + self.q_tokens + self.first_tokens + self.last_tokens)
        self._firsts, self._lasts = set(self.first_tokens), set(self.last_tokens)

    def _draw_names(self, rng: random.Random, n: int) -> list[str]:
        if self.name_tokens == 1:
            return rng.sample(self.last_tokens, n)
        names: list[str] = []
        seen = set()
        while len(names) < n:
            ell = rng.randint(1, self.name_tokens)
            name = "_".join([rng.choice(self.first_tokens) for _ in range(ell - 1)] + [rng.choice(self.last_tokens)])
            if name not in seen:
                seen.add(name)
                names.append(name)
        return names

    def _generate(self, rng: random.Random, pick_depth: Callable[[], int]) -> tuple[dict, list[int]]:
        n = rng.randint(self.n_min, self.n_max)
        cycle = self._draw_names(rng, n)
        edges = [[cycle[i], cycle[(i + 1) % n]] for i in range(n)]
        rng.shuffle(edges)
        start = cycle.index(edges[0][0])
        cycle = cycle[start:] + cycle[:start]
        queries, answers = [], []
        for _ in range(self.queries):
            k, i = pick_depth(), rng.randrange(n)
            a = cycle[(i + k) % n]
            queries.append({"k": k, "q": cycle[i], "a": a})
            answers += self.vocab.encode(a.split("_"))
        return {"cycle": cycle, "edges": edges, "queries": queries}, answers

    def _words(self, meta: dict) -> tuple[list[str], list[int], list[int]]:
        context = [tok for edge in meta["edges"] for name in edge for tok in name.split("_")]
        words = ["<pad>"] * (self.context_windows * self.window - len(context)) + context
        scored, depth = [], []
        for query in meta["queries"]:
            a = query["a"].split("_")
            item = [f"<q{query['k']}>", *query["q"].split("_"), "<ans>", *a]
            if len(words) % self.window + len(item) > self.window:
                words += ["<pad>"] * (-len(words) % self.window)
            ans = len(words) + len(item) - len(a) - 1
            scored += range(ans, ans + len(a))
            depth += [query["k"]] * len(a)
            words += item
        return words + ["<pad>"] * (self.seq_len - len(words)), scored, depth

    def _read_name(self, words: list[str], i: int, end: int, what: str) -> tuple[str, int]:
        """The name starting at words[i] (it must end before `end`) and the position after it."""
        tokens = []
        while i < end and words[i] in self._firsts and len(tokens) < self.name_tokens - 1:
            tokens.append(words[i])
            i += 1
        if i >= end:
            raise ValueError(
                f"{self.at(end - 1)}: {what} runs past the end of its window "
                "(queries may not straddle windows; edges must fit in the context)"
            )
        if words[i] not in self._lasts:
            kind = f"a name token {self.last_tokens[0]}…{self.last_tokens[-1]}"
            if self.name_tokens > 1:
                kind = f"a name (up to {self.name_tokens - 1} a-tokens, then one z-token)"
            raise ValueError(f"{self.at(i)}: expected {what}, {kind}; got {words[i]!r}")
        return "_".join(tokens + [words[i]]), i + 1

    def _read(self, words: list[str]) -> dict:
        end = self.context_windows * self.window
        i = 0
        while i < end and words[i] == "<pad>":
            i += 1
        names = []
        while i < end:
            if words[i] == "<pad>":
                raise ValueError(
                    f"{self.at(i)}: '<pad>' inside the edge list; the context is left-padded, "
                    "so padding goes before the first edge"
                )
            name, i = self._read_name(words, i, end, "a name of the edge list")
            names.append(name)
        edges = [names[j : j + 2] for j in range(0, len(names), 2)]
        cycle = self._check_cycle(edges)
        succ = dict(zip(cycle, cycle[1:] + cycle[:1]))
        queries = []
        for w in range(self.context_windows, self.seq_len // self.window):
            i, end = w * self.window, (w + 1) * self.window
            while i < end and words[i] != "<pad>":
                if words[i] not in self.q_tokens:
                    raise ValueError(
                        f"{self.at(i)}: expected a query token <q1>…<q{self.max_depth}> or <pad>, got {words[i]!r}"
                    )
                k, start = int(words[i][2:-1]), i
                q, i = self._read_name(words, i + 1, end, "the query's name")
                if i >= end or words[i] != "<ans>":
                    got = repr(words[i]) if i < end else "the end of the window"
                    raise ValueError(f"{self.at(min(i, end - 1))}: expected <ans> after the query name, got {got}")
                a, i = self._read_name(words, i + 1, end, "the answer name")
                if q not in succ:
                    raise ValueError(f"{self.at(start)}: the query's name {_show(q)!r} is not a node of the cycle")
                truth = q
                for _ in range(k):
                    truth = succ[truth]
                # The answer shown is the problem's, as the layout checks (Task.shows_answers): a wrong one of the
                # right length is told there, and filled in by fill_answers. One of another length would shift the
                # layout, so it is told here.
                if (n := len(truth.split("_"))) != (m := len(a.split("_"))):
                    raise ValueError(
                        f"{self.at(start)}: the query <q{k}> {_show(q)} is answered {_show(truth)!r} ({n} token(s)), "
                        f"not {_show(a)!r} ({m}); type the problem's answer there (one of another length cannot be "
                        "filled in)"
                    )
                queries.append({"k": k, "q": q, "a": truth})
            for j in range(i, end):
                if words[j] != "<pad>":
                    raise ValueError(
                        f"{self.at(j)}: expected only <pad> after the padding in window {w}, got {words[j]!r}"
                    )
        if not 1 <= len(queries) <= self.queries:
            raise ValueError(
                f"expected 1 to {self.queries} queries '<qk> name <ans> answer' after the context, got {len(queries)}"
            )
        return {"cycle": cycle, "edges": edges, "queries": queries}

    def _check_cycle(self, edges: list[list[str]]) -> list[str]:
        """The cycle through all edges, starting at the first edge's source, or a ValueError saying why not."""
        if not edges:
            raise ValueError("the context has no edges; expected the edges 'x y' of one directed cycle")
        if len(edges[-1]) == 1:
            raise ValueError(
                f"the edge list has an odd number of names ({2 * len(edges) - 1}); each edge is a pair 'x y'"
            )
        succ: dict[str, str] = {}
        pred: dict[str, str] = {}
        for x, y in edges:
            if x in succ:
                raise ValueError(
                    f"node {_show(x)!r} has out-degree 2 (edges '{_show(x)} {_show(succ[x])}' and "
                    f"'{_show(x)} {_show(y)}'); the edges must form one directed cycle"
                )
            if y in pred:
                raise ValueError(
                    f"node {_show(y)!r} has in-degree 2 (edges '{_show(pred[y])} {_show(y)}' and "
                    f"'{_show(x)} {_show(y)}'); the edges must form one directed cycle"
                )
            succ[x], pred[y] = y, x
        for y in pred:
            if y not in succ:
                raise ValueError(f"node {_show(y)!r} has no outgoing edge; the edges must form one directed cycle")
        cycle = [edges[0][0]]
        while succ[cycle[-1]] != cycle[0]:
            cycle.append(succ[cycle[-1]])
        if len(cycle) != len(succ):
            raise ValueError(
                f"the edges form more than one cycle: the cycle through {_show(cycle[0])!r} has "
                f"{len(cycle)} of the {len(succ)} nodes"
            )
        return cycle

    def key(self, meta: dict) -> str:
        cycle = meta["cycle"]
        start = cycle.index(min(cycle))  # the same cycle in any rotation has the same key
        return " ".join(cycle[start:] + cycle[:start])

    def recompute(self, meta: dict) -> list[int]:
        succ = {x: y for x, y in meta["edges"]}
        answers = []
        for query in meta["queries"]:
            node = query["q"]
            for _ in range(query["k"]):
                node = succ[node]
            answers += [self.vocab[tok] for tok in node.split("_")]
        return answers

    def chance(self, depth: int) -> float:
        """1 / mean(n) over the instance's range of n: guessing uniformly among the cycle's nodes."""
        return 2 / (self.n_min + self.n_max)

    @property
    def effective_depth_name(self) -> str | None:
        """ "hops k mod n" where some k can wrap around a cycle (n_min <= max_depth); None where k is always exact."""
        return "hops k mod n" if self.n_min <= self.max_depth else None

    effective_depth_about = "k mod n (0 = the query itself); a cell pools every nominal k"
    first_answer_about = (
        "the first query of each sequence, asked before any answer appears in the query window, so no answer shown "
        "there can shorten its chain"
    )

    def effective_depth(self, example: Example) -> list[int | None]:
        """k mod n per answer: on a cycle of n nodes, whole turns are free (k = n is the query itself)."""
        n = len(example.meta["cycle"])
        return [k % n for k in example.depth]


def _show(name: str) -> str:
    """A name as typed: its tokens separated by spaces."""
    return name.replace("_", " ")
