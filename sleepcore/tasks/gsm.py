"""A GSM-Infinite-style symbolic task: find one variable's value in a shuffled set of modular equations.

Written from the generator's description in the paper (arXiv 2605.26099), not from its code. A random forest of
variables: roots get values, `vA = 7 ;`; every other variable is one operation on earlier ones, `vA = vB + vC ;`, or on
one and a constant, `vA = vB - 3 ;` (with chance `constant`; at 1 every ancestry is a chain; constants are
0..`max_constant`, by default the whole range); arithmetic is mod `modulus`. The depth ("op") is the number of
operations in the asked variable's ancestry. Noise variables (their own forest, disjoint from that ancestry) fill
the context as far as it fits, and all equations are shuffled, so solving takes chained lookups.

Layout (window L = `window`):
    context, `context_windows` windows:  <q> vT ; <equations> <pad> …   the question first, right-padded
    one query window:                   vT <ans> a vA <ans> b … <pad>   `<ans>` predicts the variable's value
The query window asks vT, then (with `queries` > 1) up to `queries` − 1 other variables of vT's ancestry, its
intermediate results and roots, each with its own depth: more answers per problem, from lookup (depth 0, a root)
up to the question. With `order` "deepest" (the default) queries go from deepest to shallowest, the question
first, so no answer already shown is an ancestor of a later query (none of them gives a later answer away). With
"shallowest" they go the other way, the question last: each answer shown is an operand of later ones, a scaffold
(a later query needs one equation read from the fast weights and an operand's value from the query window), not a
measure of multi-step recall.
meta: {"question": "vT", "queries": ["vT", "vA", …], "equations": [{"var": "vA", "op": "+"|"-"|"*"|None,
"args": ["vB", 3] or [7]}, …] in shown order, "modulus": P}; constants are ints, variables strings.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable

from sleepcore.tasks.base import Example, Task, Vocab, check_int

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def equation_words(eq: dict) -> list[str]:
    """`vA = 7 ;` for a root, `vA = vB + 3 ;` for an operation."""
    if eq["op"] is None:
        return [eq["var"], "=", str(eq["args"][0]), ";"]
    return [eq["var"], "=", str(eq["args"][0]), eq["op"], str(eq["args"][1]), ";"]


def evaluate(equations: list[dict], modulus: int) -> dict[str, int]:
    """Every variable's value by plain recursion over the definitions; ValueError on a dangling or circular one."""
    defs = {eq["var"]: eq for eq in equations}
    values: dict[str, int] = {}

    def value(var: str, path: list[str]) -> int:
        if var in values:
            return values[var]
        if var in path:
            raise ValueError(f"circular definition: {' -> '.join(path[path.index(var) :] + [var])}")
        if var not in defs:
            raise ValueError(f"{path[-1]} uses {var}, which no equation defines")
        eq = defs[var]
        args = [a if isinstance(a, int) else value(a, path + [var]) for a in eq["args"]]
        if eq["op"] is None:
            result = args[0]
        elif eq["op"] == "+":
            result = args[0] + args[1]
        elif eq["op"] == "-":
            result = args[0] - args[1]
        elif eq["op"] == "*":
            result = args[0] * args[1]
        else:
            raise ValueError(f"unknown operation {eq['op']!r} in the equation for {var}")
        values[var] = result % modulus
        return values[var]

    for var in defs:
        value(var, [])
    return values


class Gsm(Task):
    name = "gsm"
    shows_answers = True
    DEFAULTS = {
        "modulus": 10,
        "ops": ("+", "-"),
        "min_depth": 1,
        "max_depth": 8,
        "depths": (1, 2, 3, 4, 5, 6, 7, 8),
        "variables": 40,
        "context_windows": 4,
        "window": 48,
        "queries": 1,
        "constant": 1 / 3,
        "max_constant": None,
        "order": "deepest",
    }

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        self.modulus = check_int(p, "modulus", 2)
        self.ops = p["ops"]
        if (
            not isinstance(self.ops, list)
            or not self.ops
            or len(set(self.ops)) != len(self.ops)
            or not set(self.ops) <= set(OPS)
        ):
            raise ValueError(f"ops must be a non-empty list of distinct operations from {list(OPS)}, got {self.ops!r}")
        # The largest ancestry (every operand a fresh variable) has max_depth operations and max_depth + 1 roots.
        self.variables = check_int(p, "variables", 2 * self.max_depth + 1, "2 * max_depth + 1")
        self.context_windows = check_int(p, "context_windows", 1)
        self.window = check_int(p, "window", 2)
        self.constant = p["constant"]
        if isinstance(self.constant, bool) or not isinstance(self.constant, int | float) or not 0 <= self.constant <= 1:
            raise ValueError(
                f"constant (the chance that an operation's second operand is a constant) must be a number in "
                f"[0, 1], got {self.constant!r}"
            )
        # None: constants drawn from the whole range 0..modulus-1, as in GSM-Infinite.
        self.max_constant = p["max_constant"]
        if self.max_constant is None:
            self.max_constant = self.modulus - 1
        elif (
            isinstance(self.max_constant, bool)
            or not isinstance(self.max_constant, int)
            or not (0 <= self.max_constant < self.modulus)
        ):
            raise ValueError(
                f"max_constant (the largest constant an operation uses) must be null or an integer in "
                f"[0, {self.modulus - 1}] (below the modulus), got {self.max_constant!r}"
            )
        # The smallest ancestry: a chain of operations with constants on one root; with no constants, a tree of
        # max_depth operations on max_depth + 1 roots.
        roots = 1 if self.constant > 0 else self.max_depth + 1
        smallest = 3 + 6 * self.max_depth + 4 * roots
        if smallest > self.context_windows * self.window:
            raise ValueError(
                f"the question and {self.max_depth} operations on {roots} root(s) need at least {smallest} tokens, "
                f"more than context_windows * window = {self.context_windows * self.window}"
            )
        self.queries = check_int(p, "queries", 1)
        self.order = p["order"]
        if self.order not in ("deepest", "shallowest"):
            raise ValueError(
                f"order must be 'deepest' or 'shallowest' (the queries' order by depth), got {self.order!r}"
            )
        if 3 * self.queries > self.window:
            raise ValueError(f"{self.queries} queries of 3 tokens do not fit in one window of {self.window}")
        self.seq_len = (self.context_windows + 1) * self.window
        self.value_tokens = [str(v) for v in range(self.modulus)]
        self.var_tokens = [f"v{i}" for i in range(self.variables)]
        self.vocab = Vocab(["<pad>", "<q>", "<ans>", "=", ";"] + self.ops + self.value_tokens + self.var_tokens)

    def _generate(self, rng: random.Random, pick_depth: Callable[[], int]) -> tuple[dict, list[int]]:
        room = self.context_windows * self.window - 3  # after `<q> vT ;`
        depth = pick_depth()
        while True:  # redraw the rare ancestries too long for the context
            names = rng.sample(self.var_tokens, self.variables)
            equations: list[dict] = []
            values: dict[str, int] = {}
            target = self._grow(depth, names, equations, values, rng)
            used = sum(len(equation_words(eq)) for eq in equations)
            if used <= room:
                break
        ancestry = [eq["var"] for eq in equations if eq["var"] != target]  # _grow appended only the ancestry
        asked = [target] + rng.sample(ancestry, min(self.queries - 1, len(ancestry)))
        self._add_noise(names, equations, room - used, rng)
        rng.shuffle(equations)
        queries = self._deepest_first(asked, equations, rng)
        if self.order == "shallowest":
            queries.reverse()
        meta = {"question": target, "queries": queries, "equations": equations}
        meta["modulus"] = self.modulus
        return meta, [self.vocab[str(values[v])] for v in meta["queries"]]

    def _deepest_first(self, asked: list[str], equations: list[dict], rng: random.Random) -> list[str]:
        """The asked variables from most to fewest operations (ties in random order)."""
        rng.shuffle(asked)
        return sorted(asked, key=lambda v: -self.operations({"question": v, "equations": equations}))

    def _grow(
        self, n_ops: int, names: list[str], equations: list[dict], values: dict[str, int], rng: random.Random
    ) -> str:
        """A fresh variable computed with exactly n_ops operations; appends its ancestry's equations, roots first."""
        if n_ops == 0:
            var, value = names.pop(), rng.randrange(self.modulus)
            equations.append({"var": var, "op": None, "args": [value]})
            values[var] = value
            return var
        if rng.random() < self.constant:
            left = self._grow(n_ops - 1, names, equations, values, rng)
            right: str | int = rng.randint(0, self.max_constant)
        else:
            split = rng.randint(0, n_ops - 1)
            left = self._grow(split, names, equations, values, rng)
            right = self._grow(n_ops - 1 - split, names, equations, values, rng)
        op, var = rng.choice(self.ops), names.pop()
        equations.append({"var": var, "op": op, "args": [left, right]})
        values[var] = OPS[op](values[left], values[right] if isinstance(right, str) else right) % self.modulus
        return var

    def _add_noise(self, names: list[str], equations: list[dict], room: int, rng: random.Random) -> None:
        """Noise equations on their own variables until the names or the room run out."""
        noise: list[str] = []
        while names and room >= 4:
            var = names.pop()
            if noise and room >= 6 and rng.random() < 0.5:
                right = rng.randint(0, self.max_constant) if rng.random() < self.constant else rng.choice(noise)
                eq = {"var": var, "op": rng.choice(self.ops), "args": [rng.choice(noise), right]}
            else:
                eq = {"var": var, "op": None, "args": [rng.randrange(self.modulus)]}
            noise.append(var)
            equations.append(eq)
            room -= len(equation_words(eq))

    def _words(self, meta: dict) -> tuple[list[str], list[int], list[int]]:
        q = meta["question"]
        words = ["<q>", q, ";"] + [w for eq in meta["equations"] for w in equation_words(eq)]
        words += ["<pad>"] * (self.context_windows * self.window - len(words))
        values = evaluate(meta["equations"], meta["modulus"])
        scored, depth = [], []
        for v in meta["queries"]:
            scored.append(len(words) + 1)
            depth.append(self.operations({"question": v, "equations": meta["equations"]}))
            words += [v, "<ans>", str(values[v])]
        words += ["<pad>"] * ((self.context_windows + 1) * self.window - len(words))
        return words, scored, depth

    def operations(self, meta: dict) -> int:
        """The depth: the number of operations in the question's ancestry."""
        defs = {eq["var"]: eq for eq in meta["equations"]}
        seen, stack = set(), [meta["question"]]
        while stack:
            var = stack.pop()
            if var not in seen:
                seen.add(var)
                stack += [a for a in defs[var]["args"] if isinstance(a, str)]
        return sum(defs[var]["op"] is not None for var in seen)

    def _read(self, words: list[str]) -> dict:
        end = self.context_windows * self.window
        if words[0] != "<q>" or words[1] not in self.var_tokens or words[2] != ";":
            raise ValueError(f"{self.at(0)}: expected the question first, '<q> vX ;', got {' '.join(words[:3])!r}")
        equations, i = [], 3
        while i < end and words[i] != "<pad>":
            eq, i = self._read_equation(words, i, end)
            equations.append(eq)
        for j in range(i, end):
            if words[j] != "<pad>":
                raise ValueError(f"{self.at(j)}: expected only <pad> after the last equation, got {words[j]!r}")
        seen = set()
        for eq in equations:
            if eq["var"] in seen:
                raise ValueError(f"variable {eq['var']} is defined twice")
            seen.add(eq["var"])
        if words[1] not in seen:
            raise ValueError(f"the question asks for {words[1]}, which no equation defines")
        evaluate(equations, self.modulus)  # rejects dangling and circular definitions
        queries = self._read_queries(words, end, seen)
        return {"question": words[1], "queries": queries, "equations": equations, "modulus": self.modulus}

    def _read_queries(self, words: list[str], start: int, defined: set[str]) -> list[str]:
        """The variables asked in the query window, `vX <ans> a` each; their answers are checked by the layout."""
        queries, j = [], start
        while j < len(words) and words[j] != "<pad>":
            if words[j] not in self.var_tokens or j + 2 >= len(words) or words[j + 1] != "<ans>":
                raise ValueError(f"{self.at(j)}: expected a query 'vX <ans> a', got {' '.join(words[j : j + 3])!r}")
            if words[j] not in defined:
                raise ValueError(f"{self.at(j)}: the query asks for {words[j]}, which no equation defines")
            if len(queries) == self.queries:
                raise ValueError(f"{self.at(j)}: more than {self.queries} queries; this task asks at most that many")
            queries.append(words[j])
            j += 3
        where, at = ("starts", 0) if self.order == "deepest" else ("ends", -1)
        if not queries or queries[at] != words[1]:
            raise ValueError(
                f"{self.at(start)}: the query window {where} by asking the question, '{words[1]} <ans> a' "
                f"(order {self.order!r})"
            )
        for k in range(j, len(words)):
            if words[k] != "<pad>":
                raise ValueError(f"{self.at(k)}: expected only <pad> after the last query, got {words[k]!r}")
        return queries

    def _read_equation(self, words: list[str], i: int, end: int) -> tuple[dict, int]:
        """The equation starting at words[i] and the position after it."""
        operands = set(self.var_tokens) | set(self.value_tokens)

        def expect(j: int, allowed: set[str], what: str) -> str:
            if j >= end:
                raise ValueError(f"{self.at(end - 1)}: the equation starting at token {i} runs past the context")
            if words[j] not in allowed:
                raise ValueError(f"{self.at(j)}: expected {what}, got {words[j]!r}")
            return words[j]

        def operand(w: str) -> str | int:
            return int(w) if w in self.value_tokens else w

        var = expect(i, set(self.var_tokens), "a variable starting an equation 'vA = 7 ;' or 'vA = vB + 3 ;'")
        expect(i + 1, {"="}, "'='")
        first = expect(i + 2, operands, "a value or a variable")
        after = expect(i + 3, {";"} | set(self.ops), f"';' or an operation ({' '.join(self.ops)})")
        if after == ";":
            if first not in self.value_tokens:
                raise ValueError(f"{self.at(i + 2)}: a root equation gives a value ('vA = 7 ;'), got {first!r}")
            return {"var": var, "op": None, "args": [int(first)]}, i + 4
        second = expect(i + 4, operands, "a value or a variable")
        expect(i + 5, {";"}, "';'")
        return {"var": var, "op": after, "args": [operand(first), operand(second)]}, i + 6

    def key(self, meta: dict) -> str:
        return " ".join(sorted(" ".join(equation_words(eq)) for eq in meta["equations"]))

    def recompute(self, meta: dict) -> list[int]:
        values = evaluate(meta["equations"], meta["modulus"])
        missing = [v for v in [meta["question"], *meta["queries"]] if v not in values]
        if missing:
            raise ValueError(f"the queries ask for {', '.join(missing)}, which no equation defines")
        return [self.vocab[str(values[v])] for v in meta["queries"]]

    # Every answer shown in the query window can give later ones away: deepest first, a shown variable's value and
    # one equation undo an operation (vA = vB + 2 and vA's value give vB's), so the ancestry's answers need fewer
    # operations than their nominal depth. The question is asked before any answer is shown (in "deepest" order):
    # counted alone, it is the measure of multi-step recall.
    effective_depth_name = "operations, the question alone"
    effective_depth_about = (
        "the question alone, which is asked before any answer is shown (each answer shown earlier can give a later "
        "one away, since a shown value and one equation undo an operation, so the other answers are left out)"
    )

    def effective_depth(self, example: Example) -> list[int | None]:
        """The question's depth for its answer; None (not counted) for the others, which earlier answers can give
        away. In "shallowest" order the question comes last and every answer before it is a scaffold: none counts."""
        return [d if i == 0 and self.order == "deepest" else None for i, d in enumerate(example.depth)]

    def chance(self, depth: int) -> float:
        return 1 / self.modulus
