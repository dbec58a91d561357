"""Task generators: answers against recomputation, layout invariants, splits, depths, text round trips, errors."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache

import pytest

from sleepcore.tasks import TASK_PRESETS, TASKS, Example, Task, get_preset, get_task, split_of
from sleepcore.tasks.base import WrongAnswersError
from sleepcore.tasks.gsm import evaluate

PRESETS = list(TASK_PRESETS)


@cache
def task_of(preset: str) -> Task:
    return get_preset(preset)


@cache
def train_samples(preset: str) -> list[Example]:
    return task_of(preset).sample(2000, seed=0)


def wolfram_step(row: list[int], rule: int = 110) -> list[int]:
    """An elementary cellular automaton step from the rule number's bits, periodic wrap."""
    W = len(row)
    return [(rule >> (4 * row[i - 1] + 2 * row[i] + row[(i + 1) % W])) & 1 for i in range(W)]


# --- generation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_answers_match_recompute_and_layout_holds(preset):
    task = task_of(preset)
    context_end = task.context_windows * task.window
    for ex in train_samples(preset):
        assert task.recompute(ex.meta) == ex.answers
        assert len(ex.tokens) == len(ex.targets) == len(ex.loss_mask) == task.seq_len
        assert [t >= 0 for t in ex.targets] == ex.loss_mask
        assert not any(ex.loss_mask[:context_end]), "a context window has a scored position"
        assert len(ex.depth) == sum(ex.loss_mask) > 0
        floor = 0 if task.name == "gsm" else task.min_depth  # gsm also asks the question's ancestry (down to roots)
        assert all(floor <= d <= task.max_depth for d in ex.depth) and max(ex.depth) >= task.min_depth
        assert all(0 <= t < len(task.vocab) for t in ex.tokens)
    json.dumps([ex.meta for ex in train_samples(preset)])
    json.dumps(task.params)


@pytest.mark.parametrize("preset", PRESETS)
def test_sampling_is_deterministic(preset):
    task = task_of(preset)
    assert task.sample(20, seed=7) == task.sample(20, seed=7)
    assert task.sample(20, seed=7) != task.sample(20, seed=8)
    assert task.sample(20, seed=7, split="test") == task.sample(20, seed=7, split="test")


@pytest.mark.parametrize("preset", PRESETS)
def test_splits_are_disjoint_by_key(preset):
    task = task_of(preset)
    train = {task.key(ex.meta) for ex in train_samples(preset)[:300]}
    test_examples = task.sample(300, seed=0, split="test")
    test = {task.key(ex.meta) for ex in test_examples}
    assert all(split_of(k) == "train" for k in train) and all(split_of(k) == "test" for k in test)
    assert not train & test
    assert {ex.depth[0] for ex in test_examples} == set(task.depths)  # the first answer is the question's
    assert all(task.recompute(ex.meta) == ex.answers for ex in test_examples)


@pytest.mark.parametrize("preset", PRESETS)
def test_curriculum_depths_respect_max_depth(preset):
    task = task_of(preset)
    m = task.min_depth + 2
    depths = [ex.depth[0] for ex in task.sample(600, seed=3, max_depth=m)]
    assert set(depths) == set(range(task.min_depth, m + 1))
    # max_depth half the time, else uniform over [min_depth, m]: P(m) = 1/2 + 1/6
    assert abs(Counter(depths)[m] / len(depths) - (0.5 + 0.5 / 3)) < 0.08
    train_depths = {ex.depth[0] for ex in train_samples(preset)}
    assert train_depths == set(range(task.min_depth, task.max_depth + 1))
    fixed = task.sample(50, seed=4, split="test", depth=task.depths[-1])
    assert {ex.depth[0] for ex in fixed} == {task.depths[-1]} and all(max(ex.depth) == ex.depth[0] for ex in fixed)
    assert all(task.recompute(ex.meta) == ex.answers for ex in fixed)


def test_rule110_known_triangle():
    # A single 1 grows Rule 110's well-known left-leaning triangle.
    triangle = [
        "0000000000000001",
        "0000000000000011",
        "0000000000000111",
        "0000000000001101",
        "0000000000011111",
        "0000000000110001",
        "0000000001110011",
        "0000000011010111",
        "0000000111111101",
    ]
    rows = [[int(c) for c in line] for line in triangle]
    for a, b in zip(rows, rows[1:]):
        assert wolfram_step(a) == b
    task = get_task("rule110", W=16, R=1, whole_rows=True, max_depth=8, depths=[8])
    one, zero = task.vocab["1"], task.vocab["0"]
    for t in range(1, 9):
        got = task.recompute({"rows": [rows[0]], "t": t, "whole_rows": True})
        assert got == [one if b else zero for b in rows[t]]


def test_rule110_first_bits_match_an_independent_stepper():
    task = task_of("rule110-paper")
    for ex in train_samples("rule110-paper")[:300]:
        rows = ex.meta["rows"]
        for _ in range(ex.meta["t"]):
            rows = [wolfram_step(r) for r in rows]
        assert task.vocab.decode(ex.answers) == [str(r[0]) for r in rows]


def test_depo_structure():
    task = task_of("depo-paper")
    multi_token_answers = 0
    for ex in train_samples("depo-paper")[:500]:
        cycle, edges = ex.meta["cycle"], ex.meta["edges"]
        assert 4 <= len(cycle) <= 75 and len(set(cycle)) == len(cycle)
        assert sorted(map(tuple, edges)) == sorted(zip(cycle, cycle[1:] + cycle[:1]))
        assert edges[0][0] == cycle[0]
        assert all(len(name.split("_")) <= 2 and name.split("_")[-1].startswith("z") for name in cycle)
        assert len(ex.meta["queries"]) == 10
        multi_token_answers += sum("_" in q["a"] for q in ex.meta["queries"])
    assert multi_token_answers > 0
    assert task.chance(1) == pytest.approx(1 / 39.5)


def test_gsm_noise_is_disjoint_from_the_ancestry():
    for ex in train_samples("gsm-paper")[:500]:
        defs = {eq["var"]: eq for eq in ex.meta["equations"]}
        ancestry, stack = set(), [ex.meta["question"]]
        while stack:
            var = stack.pop()
            if var not in ancestry:
                ancestry.add(var)
                stack += [a for a in defs[var]["args"] if isinstance(a, str)]
        assert ex.depth == [sum(defs[v]["op"] is not None for v in ancestry)]
        for var, eq in defs.items():
            if var not in ancestry:
                assert not ancestry & set(eq["args"]), f"noise {var} depends on the ancestry"


# --- text -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_render_parse_round_trip(preset):
    task = task_of(preset)
    for ex in train_samples(preset)[:100]:
        text = task.render(ex)
        assert text.count(" | ") == task.seq_len // task.window - 1
        assert task.parse(text) == ex
        bare = " ".join(w.split("[=")[0] for w in text.split() if w != "|")
        assert task.parse(bare) == ex


def test_parse_custom_rule110():
    task = get_task("rule110", W=16, R=1, whole_rows=False, max_depth=4, depths=[4])
    ex = task.parse("t4 " + " ".join("0000000000000001") + " ? " + "<pad> " * 16)
    assert task.vocab.decode(ex.answers) == ["0"] and ex.depth == [4]


def words_of(task: Task, ex: Example) -> list[str]:
    return task.vocab.decode(ex.tokens)


@pytest.mark.parametrize("preset", PRESETS)
def test_parse_rejects_unknown_token_wrong_length_and_empty(preset):
    task = task_of(preset)
    words = words_of(task, train_samples(preset)[0])
    with pytest.raises(
        ValueError, match=r"1 unknown token\(s\) \('banana'; the first is token 0, .*valid tokens: <pad>"
    ):
        task.parse(" ".join(["banana"] + words[1:]))
    with pytest.raises(ValueError, match=r"^3 unknown token\(s\) \('x', 'y'; the first is token 1, counting from 0\)"):
        task.parse(" ".join([words[0], "x", "y", "x"] + words[4:]))  # each named once
    with pytest.raises(ValueError) as long_token:  # a pasted blob is shortened, the valid tokens still listed
        task.parse(" ".join(["x" * 20_000] + words[1:]))
    assert f"'{'x' * 24}'…" in str(long_token.value) and len(str(long_token.value)) < 2_000
    assert "valid tokens: <pad>" in str(long_token.value)
    with pytest.raises(ValueError, match=f"expected {task.seq_len} tokens .*got {task.seq_len - 1}"):
        task.parse(" ".join(words[:-1]))
    for empty in ("", "  \n ", " | | "):
        with pytest.raises(ValueError, match="empty example"):
            task.parse(empty)
    with pytest.raises(ValueError, match="window bars"):
        task.parse(" ".join(words[:3]) + " | " + " ".join(words[3:]))


def test_parse_rejects_a_wrong_answer():
    task = task_of("rule110-paper")
    ex = train_samples("rule110-paper")[0]
    text = task.render(ex).replace("?[=0]", "?[=2]").replace("?[=1]", "?[=0]").replace("?[=2]", "?[=1]")
    with pytest.raises(
        WrongAnswersError, match=r"answer mark\(s\) disagree with the problem: token \d+ .*: \[=.\], but the answer is"
    ):
        task.parse(text)
    filled, changes = task.fill_answers(text)  # the marks put right: the answers recomputed
    assert filled == task.render(ex) and changes == [] and task.parse(filled).targets == ex.targets
    with pytest.raises(ValueError, match="not scored"):
        task.parse("t27[=1]" + task.render(ex)[3:])


def test_parse_rule110_structure_errors():
    task = task_of("rule110-paper")
    words = words_of(task, train_samples("rule110-paper")[0])
    bad = ["0"] + words[1:]
    with pytest.raises(ValueError, match=r"token 0 \(window 0.*expected the step token t1…t32"):
        task.parse(" ".join(bad))
    bad = words[:25] + ["t1" if words[25] != "t1" else "t2"] + words[26:]
    with pytest.raises(ValueError, match="must announce the same t"):
        task.parse(" ".join(bad))
    bad = words[:3] + ["?"] + words[4:]
    with pytest.raises(ValueError, match=r"token 3 \(window 0.*expected a bit 0 or 1"):
        task.parse(" ".join(bad))
    bad = words[:-1] + ["?"]
    with pytest.raises(ValueError, match=r"token 124 .*expected '<pad>', got '\?'"):
        task.parse(" ".join(bad))


def test_depo_k4_every_k_is_exactly_k_hops_with_no_shorter_walk_back():
    task = task_of("depo-k4")
    for split in ("train", "test"):
        for ex in task.sample(200, seed=5, split=split):
            cycle, n = ex.meta["cycle"], len(ex.meta["cycle"])
            assert 9 <= n <= 12
            for query, eff in zip(ex.meta["queries"], task.effective_depth(ex), strict=True):
                k = query["k"]
                assert eff == k and n - k > k  # no wrap, and walking backwards takes more hops than forwards
                assert cycle[(cycle.index(query["q"]) + k) % n] == query["a"]
    assert task.effective_depth_name is None and task_of("depo-mini").effective_depth_name == "hops k mod n"


def depo_mini_text(context: str, queries: str) -> str:
    task = task_of("depo-mini")
    ctx, qs = context.split(), queries.split()
    return " ".join(["<pad>"] * (24 - len(ctx)) + ctx + qs + ["<pad>"] * (task.seq_len - 24 - len(qs)))


def test_parse_depo_custom_and_structure_errors():
    task = task_of("depo-mini")
    ex = task.parse(depo_mini_text("n1 n2 n3 n1 n2 n3", "<q2> n1 <ans> n3 <q4> n3 <ans> n1"))
    assert ex.meta["cycle"] == ["n1", "n2", "n3"] and ex.depth == [2, 4]
    assert task.vocab.decode(ex.answers) == ["n3", "n1"]
    with pytest.raises(ValueError, match=r"node 'n1' has out-degree 2 \(edges 'n1 n2' and 'n1 n3'\)"):
        task.parse(depo_mini_text("n1 n2 n1 n3 n3 n1", "<q1> n1 <ans> n2"))
    with pytest.raises(ValueError, match="node 'n3' has in-degree 2"):
        task.parse(depo_mini_text("n1 n3 n2 n3 n3 n1", "<q1> n1 <ans> n3"))
    with pytest.raises(ValueError, match="more than one cycle"):
        task.parse(depo_mini_text("n1 n2 n2 n1 n3 n4 n4 n3", "<q1> n1 <ans> n2"))
    with pytest.raises(ValueError, match="odd number of names"):
        task.parse(depo_mini_text("n1 n2 n2 n1 n3", "<q1> n1 <ans> n2"))
    with pytest.raises(ValueError, match="'<pad>' inside the edge list"):
        task.parse(depo_mini_text("n1 n2 <pad> n2 n1", "<q1> n1 <ans> n2"))
    at = f"token {task.context_windows * task.window} \\(window {task.context_windows}, its token 0 of"
    with pytest.raises(WrongAnswersError, match=r"token 27 \(window 1, its token 3 of 0–\d+\): 'n2', but the problem"):
        task.parse(depo_mini_text("n1 n2 n2 n1", "<q2> n1 <ans> n2"))
    with pytest.raises(WrongAnswersError, match=r"^1 answer\(s\) shown after a query are not the problem's: token 31 "):
        task.parse(depo_mini_text("n1 n2 n3 n1 n2 n3", "<q2> n1 <ans> n3 <q1> n2 <ans> n1"))
    with pytest.raises(ValueError, match=at + r" 0–\d+\): the query's name 'n5' is not a node of the cycle"):
        task.parse(depo_mini_text("n1 n2 n2 n1", "<q2> n5 <ans> n5"))
    with pytest.raises(ValueError, match="expected <ans> after the query name"):
        task.parse(depo_mini_text("n1 n2 n2 n1", "<q2> n1 n1 <ans>"))
    with pytest.raises(ValueError, match="expected 1 to 4 queries"):
        task.parse(depo_mini_text("n1 n2 n2 n1", ""))


def test_parse_depo_multi_token_names():
    task = task_of("depo-paper")
    ex = train_samples("depo-paper")[0]
    words = words_of(task, ex)
    first = words.index("<ans>")
    bad = words[: first + 1] + ["a1", "a2", "z3"] + words[first + 2 :]
    with pytest.raises(ValueError, match="expected the answer name, a name .up to 1 a-tokens"):
        task.parse(" ".join(bad[: task.seq_len]))


def gsm_mini_text(context: str, queries: str) -> str:
    ctx, asked = context.split(), queries.split()
    return " ".join(ctx + ["<pad>"] * (64 - len(ctx)) + asked + ["<pad>"] * (32 - len(asked)))


def test_parse_gsm_custom_and_structure_errors():
    task = task_of("gsm-mini")
    context = "<q> v3 ; v3 = v1 - v2 ; v1 = 4 ; v2 = v1 + 9 ; v7 = 2 ;"
    ex = task.parse(gsm_mini_text(context, "v3 <ans> 1"))
    assert task.vocab.decode(ex.answers) == ["1"] and ex.depth == [2]  # v2 = 13 = 3, v3 = 4 - 3
    ex = task.parse(gsm_mini_text(context, "v3 <ans> 1 v2 <ans> 3 v1 <ans> 4"))
    assert task.vocab.decode(ex.answers) == ["1", "3", "4"] and ex.depth == [2, 1, 0]
    with pytest.raises(ValueError, match="v3 uses v9, which no equation defines"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 - v9 ; v1 = 4 ;", "v3 <ans> 0"))
    with pytest.raises(ValueError, match="circular definition: v3 -> v1 -> v3"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 - 2 ; v1 = v3 + 4 ;", "v3 <ans> 0"))
    with pytest.raises(ValueError, match="v1 is defined twice"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 - 2 ; v1 = 4 ; v1 = 5 ;", "v3 <ans> 2"))
    with pytest.raises(ValueError, match="the question asks for v5, which no equation defines"):
        task.parse(gsm_mini_text("<q> v5 ; v3 = v1 - 2 ; v1 = 4 ;", "v5 <ans> 0"))
    with pytest.raises(ValueError, match="expected the question first"):
        task.parse(gsm_mini_text("v3 = 4 ; <q> v3 ;", "v3 <ans> 4"))
    with pytest.raises(ValueError, match=r"token 6 \(window 0.*expected ';' or an operation \(\+ -\), got 'v2'"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 v2 ; v1 = 4 ;", "v3 <ans> 2"))
    with pytest.raises(ValueError, match="a root equation gives a value"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 ; v1 = 4 ;", "v3 <ans> 4"))
    with pytest.raises(
        ValueError, match=r"token 64 \(window 2, its token 0 of 0–31\).*starts by asking the question, 'v3 <ans> a'"
    ):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 - 2 ; v1 = 4 ;", "v1 <ans> 4"))
    with pytest.raises(
        WrongAnswersError, match=r"token 66 \(window 2, its token 2 of 0–31\): '5', but the problem's answer is '2'"
    ):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 - 2 ; v1 = 4 ;", "v3 <ans> 5"))
    with pytest.raises(ValueError, match=r"token 67 .*the query asks for v9, which no equation defines"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 - 2 ; v1 = 4 ;", "v3 <ans> 2 v9 <ans> 1"))
    with pytest.raises(ValueError, match=r"token 67 .*expected a query 'vX <ans> a', got '<ans> 1 <pad>'"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 - 2 ; v1 = 4 ;", "v3 <ans> 2 <ans> 1"))
    with pytest.raises(ValueError, match=r"unknown token\(s\) \('\*'"):
        task.parse(gsm_mini_text("<q> v3 ; v3 = v1 * 2 ; v1 = 4 ;", "v3 <ans> 8"))


@pytest.mark.parametrize("constant", [0.0, 1.0])
def test_gsm_constant_sets_the_second_operands(constant):
    params = dict(TASK_PRESETS["gsm-mini"][1], max_depth=4, depths=(1, 2, 3, 4), constant=constant)
    task = get_task("gsm", **params)  # 4 operations on 5 roots (no constants) fit in 64 tokens; 6 on 7 do not
    ops = [eq for ex in task.sample(100, seed=3) for eq in ex.meta["equations"] if eq["op"] is not None]
    assert ops and all(isinstance(eq["args"][1], int) == (constant == 1.0) for eq in ops)
    if constant == 1.0:  # every ancestry is a chain: the question's depth is the length of its chain to a root
        for ex in task.sample(50, seed=4):
            defs = {eq["var"]: eq for eq in ex.meta["equations"]}
            var, hops = ex.meta["question"], 0
            while defs[var]["op"] is not None:
                var, hops = defs[var]["args"][0], hops + 1
            assert hops == ex.depth[0] == task.operations(ex.meta)


@pytest.mark.parametrize("max_constant", [0, 2, None])
def test_gsm_max_constant_bounds_every_constant(max_constant):
    params = dict(TASK_PRESETS["gsm-mini"][1], constant=1.0, max_constant=max_constant)
    task = get_task("gsm", **params)
    examples = task.sample(200, seed=5)
    constants = {eq["args"][1] for ex in examples for eq in ex.meta["equations"] if eq["op"] is not None}
    # None keeps GSM-Infinite's whole range; 200 problems draw every constant of a bounded range
    assert constants == set(range(10 if max_constant is None else max_constant + 1))
    for ex in examples:  # the answers still follow from the equations
        values = evaluate(ex.meta["equations"], 10)
        assert [str(values[v]) for v in ex.meta["queries"]] == task.vocab.decode(ex.answers)


def test_gsm_queries_go_deepest_first_and_give_nothing_away():
    task = task_of("gsm-mini")
    for ex in train_samples("gsm-mini")[:300]:
        asked = ex.meta["queries"]
        assert asked[0] == ex.meta["question"] and len(asked) <= 6 and len(set(asked)) == len(asked)
        assert ex.depth == sorted(ex.depth, reverse=True)
        defs = {eq["var"]: eq for eq in ex.meta["equations"]}
        for i, v in enumerate(asked):
            assert v in ancestors_of(defs, asked[0])
            assert not ancestors_of(defs, v) & set(asked[:i]), "an answer shown earlier would give this one away"
    assert task.queries == 6 and task_of("gsm-paper").queries == 1


def test_gsm_shallowest_order_is_the_deepest_order_reversed_and_parses_back():
    params = TASK_PRESETS["gsm-chain"][1]
    deep, shallow = get_task("gsm", **params), get_task("gsm", **dict(params, order="shallowest"))
    for a, b in zip(deep.sample(100, seed=8), shallow.sample(100, seed=8), strict=True):
        assert a.meta["equations"] == b.meta["equations"] and b.meta["queries"] == a.meta["queries"][::-1]
        assert b.meta["queries"][-1] == b.meta["question"] and b.depth == sorted(b.depth)
        assert shallow.parse(shallow.render(b)).meta["queries"] == b.meta["queries"]
    text = deep.render(a)
    with pytest.raises(ValueError, match=r"the query window ends by asking the question.*order 'shallowest'"):
        shallow.parse(text)
    with pytest.raises(ValueError, match="order must be 'deepest' or 'shallowest'"):
        get_task("gsm", order="widest")


def ancestors_of(defs: dict, var: str) -> set[str]:
    seen, stack = set(), [var]
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            stack += [a for a in defs[v]["args"] if isinstance(a, str)]
    return seen


# --- construction -----------------------------------------------------------------------------------------


def test_registry_and_presets():
    assert set(TASKS) == {"rule110", "depo", "gsm"}
    for preset, (name, _) in TASK_PRESETS.items():
        task = get_preset(preset)
        assert task.name == name and json.loads(json.dumps(task.params)) == task.params
        assert task.min_depth <= min(task.depths) and max(task.depths) <= task.max_depth
    assert get_task("gsm").params == {**task_of("gsm-paper").params}
    assert task_of("rule110-paper").seq_len == 125 and task_of("depo-paper").seq_len == 375
    assert task_of("gsm-paper").chance(3) == 0.1 and task_of("rule110-mini").chance(1) == pytest.approx(5 / 8, abs=0.01)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("rule111", {}, "unknown task 'rule111'; valid tasks: rule110, depo, gsm"),
        ("rule110", {"w": 3}, "unknown parameter.* w for task 'rule110'; valid parameters: W, R, min_depth"),
        ("rule110", {"W": 2}, "W must be >= 3, got 2"),
        ("rule110", {"W": "24"}, "W must be an int"),
        ("rule110", {"whole_rows": 1}, "whole_rows must be true or false"),
        ("rule110", {"depths": [0, 4]}, r"depths must lie in \[min_depth, max_depth\] = \[1, 32\]; got 0"),
        ("rule110", {"min_depth": 9, "max_depth": 8}, "max_depth must be >= min_depth = 9, got 8"),
        ("depo", {"n_min": 10, "n_max": 5}, "n_max must be >= n_min = 10, got 5"),
        ("depo", {"context_windows": 2}, "largest context .* does not fit in context_windows . window = 150"),
        ("depo", {"names": 5, "name_tokens": 1}, "fewer than n_max=75 distinct names"),
        ("depo", {"window": 5, "context_windows": 60}, "a query takes up to 6 tokens, more than window=5"),
        ("depo", {"max_depth": 8}, r"depths must lie in \[min_depth, max_depth\] = \[1, 8\]; got 16"),
        ("gsm", {"ops": ["+", "/"]}, "ops must be a non-empty list of distinct operations"),
        (
            "gsm",
            {"context_windows": 1},
            r"operations on 1 root\(s\) need at least 55 tokens, more than context_windows . window = 48",
        ),
        (
            "gsm",
            {"context_windows": 1, "window": 80, "constant": 0},
            r"8 operations on 9 root\(s\) need at least 87 tokens",
        ),
        ("gsm", {"variables": 10}, r"variables must be >= 2 \* max_depth \+ 1 = 17, got 10"),
        ("gsm", {"modulus": 1}, "modulus must be >= 2"),
        ("gsm", {"constant": 1.5}, r"constant \(the chance .*\) must be a number in \[0, 1\], got 1.5"),
        ("gsm", {"constant": True}, r"must be a number in \[0, 1\], got True"),
        ("gsm", {"max_constant": 10}, r"max_constant .* must be null or an integer in \[0, 9\] .*got 10"),
        ("gsm", {"max_constant": 1.5}, r"max_constant .*got 1.5"),
    ],
)
def test_get_task_errors(name, params, message):
    with pytest.raises(ValueError, match=message):
        get_task(name, **params)


def test_sample_errors():
    task = task_of("depo-mini")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        task.sample(1, 0, split="val")
    with pytest.raises(ValueError, match=r"max_depth must lie in \[1, 8\], got 9"):
        task.sample(1, 0, max_depth=9)
    with pytest.raises(ValueError, match=r"depth must lie in \[1, 8\], got 0"):
        task.sample(1, 0, depth=0)
    with pytest.raises(ValueError, match="not both"):
        task.sample(1, 0, max_depth=3, depth=3)
    with pytest.raises(ValueError, match="unknown preset 'depo'; valid presets: rule110-paper"):
        get_preset("depo")


# sha256 (first 16 hex digits) of 64 train examples (seed 5) and 64 test examples (seed 777) of every task preset:
# tokens, targets and depths. Every preset that existed at 227e15b, before gsm's max_constant, gave these same
# digests there. The shipped checkpoints' commands reproduce them only while these stay put.
DATA_DIGESTS = {
    "depo-k4": "54944530c5e09e8c",
    "depo-mini": "14eeef0bd88c9022",
    "depo-paper": "38c71c1d403db69a",
    "gsm-chain": "6fd5b24ae309ecda",
    "gsm-chain-1w": "ec3d9bcf4e3b91f8",
    "gsm-chain-1w-c9": "dac919b4c24ad1b4",
    "gsm-chain-c2": "6f0ea17a4002ac2d",
    "gsm-mini": "3acb439c728c40de",
    "gsm-paper": "c64d1de5aa83a2e9",
    "rule110-mini": "0a93694053de5dc4",
    "rule110-paper": "307822f2881ef93d",
}


def test_task_data_is_the_data_the_shipped_checkpoints_were_trained_on():
    import hashlib
    import json

    assert set(DATA_DIGESTS) == set(TASK_PRESETS), "a new task preset: add its digest"
    for name, (task_name, params) in TASK_PRESETS.items():
        task, h = get_task(task_name, **params), hashlib.sha256()
        for split, seed in (("train", 5), ("test", 777)):
            for ex in task.sample(64, seed=seed, split=split):
                h.update(json.dumps([ex.tokens, ex.targets, ex.depth]).encode())
        assert h.hexdigest()[:16] == DATA_DIGESTS[name], f"{name}: its examples changed"


@pytest.mark.parametrize("preset", ["gsm-chain-1w", "depo-k4", "depo-mini"])
def test_fill_answers_writes_the_problems_answers_where_an_edit_left_others(preset):
    """A problem edited after its answers were written (here: every shown answer and mark replaced by another valid
    token) parses again once fill_answers has put the problem's answers back, the same example as before; the
    changes name each shown answer, and parse itself still refuses the edited text."""
    task = task_of(preset)
    for ex in task.sample(8, seed=5, split="test"):
        words = task.vocab.decode(ex.tokens)
        shown = [i + 1 for i, m in enumerate(ex.loss_mask) if m]
        assert [task.vocab[words[i]] for i in shown] == ex.answers  # what shows_answers promises
        others = sorted(ANSWERS[preset] & set(task.vocab.tokens))
        edited = list(words)
        for i in shown:
            edited[i] = next(t for t in others if t != words[i])
        # each scored position marked with the (wrong) answer now shown after it, as render would have written it
        text = " ".join(w + (f"[={edited[i + 1]}]" if ex.loss_mask[i] else "") for i, w in enumerate(edited))
        with pytest.raises(WrongAnswersError, match=rf"^{len(shown)} answer\(s\) shown after a query are not the "):
            task.parse(text)
        filled, changes = task.fill_answers(text)
        assert filled == task.render(ex)
        assert changes == [f"{task.at(i)}: {edited[i]!r} → {words[i]!r}" for i in shown]
        again = task.parse(filled)
        assert again.tokens == ex.tokens and again.targets == ex.targets


ANSWERS = {
    "gsm-chain-1w": {str(v) for v in range(10)},
    "depo-k4": {f"n{i}" for i in range(1, 100)},
    "depo-mini": {f"n{i}" for i in range(1, 100)},
}


def test_fill_answers_leaves_a_problem_that_does_not_read_to_parse_s_message():
    task = task_of("depo-mini")
    with pytest.raises(ValueError, match="'n5' is not a node of the cycle"):
        task.fill_answers(depo_mini_text("n1 n2 n2 n1", "<q2> n5 <ans> n5"))
    rule110 = task_of("rule110-paper")
    assert not rule110.shows_answers  # its queries are '?': nothing is shown to fill
    with pytest.raises(ValueError, match=r"expected '\?', got '1' \(the rule110 layout\)"):
        ex = train_samples("rule110-paper")[0]
        rule110.fill_answers(rule110.render(ex).replace("?[", "1[", 1))


def test_fill_answers_with_names_of_several_tokens():
    """depo-paper's names are one or two tokens: a wrong shown answer of the right length is filled in; one of
    another length would shift everything after it, so it is refused with the answer to type."""
    task = task_of("depo-paper")
    ex = task.sample(1, seed=1, split="test")[0]
    words = task.vocab.decode(ex.tokens)
    scored = [i for i, m in enumerate(ex.loss_mask) if m]
    one = next(i for i in scored if words[i] == "<ans>" and words[i + 1].startswith("z"))  # a one-token answer
    wrong = list(words)
    wrong[one + 1] = next(t for t in task.last_tokens if t != words[one + 1])
    filled, changes = task.fill_answers(" ".join(wrong))
    assert filled == task.render(ex) and changes == [f"{task.at(one + 1)}: {wrong[one + 1]!r} → {words[one + 1]!r}"]
    longer = words[: one + 1] + ["a1", wrong[one + 1]] + words[one + 2 :]  # two tokens where the answer has one
    end = (one // task.window + 1) * task.window  # the window ends in padding: one fewer keeps the length
    assert longer[end] == "<pad>"
    longer = longer[:end] + longer[end + 1 :]
    with pytest.raises(ValueError, match=r"is answered '.+' \(1 token\(s\)\), not 'a1 z\d+' \(2\); type the problem"):
        task.fill_answers(" ".join(longer))
