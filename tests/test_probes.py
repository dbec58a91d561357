"""Probes: they find what is linearly there and nothing more; facts match recomputation; the table and the CLI."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
import torch
from app_fixtures import app_checkpoints  # noqa: F401

from analysis import probes
from analysis.probes import (
    CHECKPOINT_SCHEMA,
    KEYS,
    bootstrap_ci,
    features,
    fit_logistic,
    fit_probe,
    predict_probe,
    principal_coordinates,
    probe_checkpoint,
    probe_models,
    probe_with_control,
    random_model,
    record_states,
    split_examples,
    task_facts,
    token_queries,
)
from analysis.probes import control_labels as make_control
from sleepcore.config import ModelConfig, SleepConfig
from sleepcore.recorder import Recorder
from sleepcore.tasks import get_preset, get_task

# --- the probe on synthetic features ---------------------------------------------------------------------------------


def clusters(n: int, classes: int, dims: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features = a random mean per class + Gaussian noise: a label that is linearly decodable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return rng.normal(size=(classes, dims))[y] * 3 + noise * rng.normal(size=(n, dims)), y


def test_a_linearly_encoded_label_is_decoded():
    X, y = clusters(600, 5, 20, noise=1.0)
    s = fit_probe(X, y, seed=0)
    assert s.acc > 0.97
    assert s.lo <= s.acc <= s.hi
    assert (s.n_train, s.n_test) == (420, 180)
    assert s.chance < 0.35


def test_multi_output_labels_are_decoded_with_more_features_than_examples():
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(300, 8))  # spread over 1000 features, as a representation would be
    X = latent @ rng.normal(size=(8, 1000)) + 0.5 * rng.normal(size=(300, 1000))
    y = (latent > 0).astype(np.int64)  # [n, C]: 8 binary outputs
    assert fit_probe(X, y, seed=0).acc > 0.9


def test_predictions_are_in_the_labels_own_values():
    X, y = clusters(400, 3, 10, noise=0.5)
    labels = np.array([7, 42, 1000])[y]  # token ids, not 0..C-1
    train = np.arange(400) < 300
    Z, variance = principal_coordinates(torch.as_tensor(X), train)
    pred = predict_probe(Z, variance, labels, train)
    assert pred.shape == (100,) and set(pred) <= {7, 42, 1000}
    assert (pred == labels[~train]).mean() > 0.97
    multi = np.stack([y == 0, y == 2], 1).astype(np.int64)  # [n, 2] in {0, 1}
    pred = predict_probe(Z, variance, multi, train)
    assert pred.shape == (100, 2) and (pred == multi[~train]).mean() > 0.97


def test_the_fit_in_the_training_span_is_the_full_space_fit(monkeypatch):
    monkeypatch.setattr(probes, "TOLERANCE_GRAD", 1e-9)  # both fits run to convergence
    monkeypatch.setattr(probes, "TOLERANCE_CHANGE", 1e-12)
    rng = np.random.default_rng(2)
    X = torch.as_tensor(rng.normal(size=(90, 200)))
    y = torch.as_tensor((X[:, 0] + X[:, 1] > 0).long())
    train = np.arange(90) < 60
    Z, variance = principal_coordinates(X, train)  # 59 coordinates in place of 200
    assert Z.shape[1] < 60
    W, b = fit_logistic(Z[:60], y[:60], 2, variance, max_iter=2000)
    Xs = ((X - X[:60].mean(0)) / X[:60].std(0, correction=0)).float()
    W_full, b_full = fit_logistic(Xs[:60], y[:60], 2, torch.ones(200), max_iter=2000)
    span, full = Z[60:] @ W + b, Xs[60:] @ W_full + b_full
    torch.testing.assert_close(span, full, atol=1e-2, rtol=1e-2)  # float32 fits


def test_random_labels_are_at_chance():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(800, 30)), rng.integers(0, 4, 800)
    s = fit_probe(X, y, seed=0)
    assert s.lo <= 0.25 <= s.hi


def test_the_split_is_by_example():
    groups = np.repeat(np.arange(50), 7)
    train = split_examples(groups, seed=0)
    for g in range(50):
        assert len(set(train[groups == g])) == 1  # an example is all train or all test
    assert len(np.unique(groups[train])) == 35
    assert (split_examples(groups, seed=0) == train).all()
    assert (split_examples(groups, seed=1) != train).any()


def test_control_labels_are_constant_per_identity():
    rng = np.random.default_rng(4)
    identity, y = rng.integers(0, 20, 500), rng.integers(0, 5, 500)
    control = make_control(identity, y, seed=0)
    for i in np.unique(identity):
        assert len(np.unique(control[identity == i])) == 1
    assert set(control) <= set(y)
    assert (make_control(identity, y, seed=0) == control).all()
    assert (make_control(identity, y, seed=1) != control).any()
    ident2, y2 = rng.integers(0, 6, (300, 3)), rng.integers(0, 2, (300, 3))  # multi-output: per column
    control2 = make_control(ident2, y2, seed=0)
    for col in range(3):
        for i in range(6):
            assert len(np.unique(control2[ident2[:, col] == i, col])) == 1


def test_selectivity_separates_a_property_from_memorised_identities():
    rng = np.random.default_rng(5)
    n = 600
    # features carry only the identity (10 recurring ones): any map identity -> label is learnable, the true one
    # no more than a random one, so selectivity is near 0
    identity = rng.integers(0, 10, n)
    X = np.eye(10)[identity] * 3 + 0.3 * rng.normal(size=(n, 10))
    memorised = probe_with_control(X, identity % 2, identity, seed=0)
    assert memorised["acc"] > 0.95 and memorised["control_acc"] > 0.9
    assert memorised["selectivity"] == memorised["acc"] - memorised["control_acc"]
    assert abs(memorised["selectivity"]) < 0.1
    # features carry the label, and every row is its own identity: the control task cannot be learned
    X, y = clusters(n, 2, 10, noise=1.0, seed=6)
    property_ = probe_with_control(X, y, np.arange(n), seed=0)
    assert property_["acc"] > 0.9 and property_["control_acc"] < 0.65
    assert property_["selectivity"] == property_["acc"] - property_["control_acc"] > 0.3


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_data():
    rng = np.random.default_rng(7)
    widths = []
    for n in (100, 1600):
        correct = (rng.random(n) < 0.7).astype(float)
        total = np.ones(n)
        lo, hi = bootstrap_ci(correct, total, seed=0)
        assert lo <= correct.mean() <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(16) = 1/4 as wide


# --- facts against an independent recomputation -----------------------------------------------------------------


def step110(row: list[int]) -> list[int]:
    """Rule 110 by its number: the new cell is bit (4·left + 2·centre + right) of 110; periodic."""
    W = len(row)
    return [(110 >> (4 * row[i - 1] + 2 * row[i] + row[(i + 1) % W])) & 1 for i in range(W)]


def test_rule110_facts_are_the_cells_after_t_steps():
    task = get_preset("rule110-mini")
    examples = task.sample(8, seed=1, split="test")
    facts = task_facts(task, examples)
    assert [f.depth for f in facts] == list(range(max(ex.meta["t"] for ex in examples) + 1))
    for f in facts:
        assert f.fact == "cell_after_steps" and f.token is None
        assert list(f.example) == [e for e, ex in enumerate(examples) if ex.meta["t"] >= f.depth]
        for e, label in zip(f.example, f.label):
            rows = examples[e].meta["rows"]
            for _ in range(f.depth):
                rows = [step110(r) for r in rows]
            assert list(label) == [c for r in rows for c in r]
        for col in range(f.label.shape[1]):  # the light cone decides the cell: one label per identity
            pairs = set(zip(f.identity[:, col], f.label[:, col]))
            assert len(pairs) == len({i for i, _ in pairs})


@pytest.mark.parametrize("params", [{}, {"n_min": 4, "n_max": 10, "names": 6, "queries": 4}])
def test_depo_facts_are_the_kth_successors(params):
    task = get_preset("depo-mini") if not params else get_task("depo", **params)  # 1- and 2-token names
    examples = task.sample(6, seed=2, split="test")
    facts = task_facts(task, examples, max_depth=5)
    assert [f.depth for f in facts] == [1, 2, 3, 4, 5]
    for f in facts:
        for e, tok, label in zip(f.example, f.token, f.label):
            succ = dict(examples[e].meta["edges"])
            [node] = [x for x in succ if x.split("_")[-1] == task.vocab.tokens[tok]]
            for _ in range(f.depth):
                node = succ[node]
            assert task.vocab.tokens[label] == node.split("_")[-1]
    # every node is asked about, except those whose last name token another node of its cycle shares
    readable = [
        (e, name)
        for e, ex in enumerate(examples)
        for name in ex.meta["cycle"]
        if [n.split("_")[-1] for n in ex.meta["cycle"]].count(name.split("_")[-1]) == 1
    ]
    assert len(facts[0].example) == len(readable)
    assert not params or len(readable) < sum(len(ex.meta["cycle"]) for ex in examples)  # 2-token names do collide


def test_gsm_facts_are_every_variables_value_by_operations():
    task = get_preset("gsm-mini")
    examples = task.sample(6, seed=3, split="test")
    facts = task_facts(task, examples)
    seen = 0
    for f in facts:
        for e, tok, label in zip(f.example, f.token, f.label):
            defs = {eq["var"]: eq for eq in examples[e].meta["equations"]}
            var = task.vocab.tokens[tok]
            assert solve(defs, var) == label
            assert operations(defs, var) == f.depth
            seen += 1
    defs = [{eq["var"]: eq for eq in ex.meta["equations"]} for ex in examples]
    assert seen == sum(operations(d, var) <= task.max_depth for d in defs for var in d)


def solve(defs: dict, var: str) -> int:
    eq = defs[var]
    args = [a if isinstance(a, int) else solve(defs, a) for a in eq["args"]]
    ops = {None: lambda a: a[0], "+": lambda a: a[0] + a[1], "-": lambda a: a[0] - a[1], "*": lambda a: a[0] * a[1]}
    return ops[eq["op"]](args) % 10


def operations(defs: dict, var: str) -> int:
    """Operations in var's ancestry, each variable counted once."""
    seen: set[str] = set()

    def visit(v: str) -> None:
        if v not in seen:
            seen.add(v)
            for a in defs[v]["args"]:
                if isinstance(a, str):
                    visit(a)

    visit(var)
    return sum(defs[v]["op"] is not None for v in seen)


# --- features from a model -------------------------------------------------------------------------------------------


def tiny_model(task, layers: str = "attn,fw", conv_size: int = 0, passes: int = 2, seed: int = 0):
    cfg = ModelConfig(
        vocab_size=len(task.vocab),
        d_model=32,
        layers=layers,
        fw_heads=2,
        head_dim=16,
        mlp_ratio=2.0,
        conv_size=conv_size,
        max_positions=task.window,
    )
    return random_model(cfg, SleepConfig(passes=passes, window=task.window, feed="mix", embed_norm=True), seed)


@pytest.mark.parametrize("conv_size", [0, 4])
def test_token_queries_are_what_the_layer_reads_with(conv_size):
    task = get_preset("depo-mini")
    model = tiny_model(task, "fw,attn", conv_size)
    fw = model.blocks[0].mixer
    with torch.no_grad():  # no write and no decay: the layer's output is exactly S read with the token's query
        fw.beta.weight.zero_(), fw.beta.bias.fill_(-40.0), fw.alpha.weight.zero_(), fw.dt_bias.fill_(-40.0)
    V = len(task.vocab)
    S = torch.randn(1, 2, 16, 16).expand(V, -1, -1, -1)
    rec = Recorder(include=["*/fw.readout"])
    with torch.no_grad():
        model.run_pass(model.embed(torch.arange(V)[:, None]), [S, None], rec, "w")
    readout = rec.store["w/layer.0/fw.readout"][:, 0]  # [vocab, H, V]
    expected = torch.einsum("thkv,thk->thv", S, token_queries(model, 0))
    torch.testing.assert_close(readout, expected, atol=1e-5, rtol=1e-4)


def test_recorded_states_are_those_of_a_full_run():
    task = get_preset("gsm-mini")  # two context windows
    model = tiny_model(task, passes=3)
    examples = task.sample(5, seed=0, split="test")
    states = record_states(model, examples, window=1)
    assert sorted(states) == [(1, 1), (1, 2), (1, 3)]
    tokens = torch.tensor([ex.tokens for ex in examples])
    rec = Recorder(include=["window.1/pass.3/layer.1/fw.state"])
    with torch.no_grad():
        model(tokens, torch.tensor([ex.loss_mask for ex in examples]), rec=rec)
    torch.testing.assert_close(states[(1, 3)], rec.store["window.1/pass.3/layer.1/fw.state"])
    facts = task_facts(task, examples)[0]
    assert features(states[(1, 3)], facts, token_queries(model, 1)).shape == (len(facts.example), 2 * 16)


@pytest.mark.parametrize("preset", ["depo-mini", "gsm-mini"])
def test_readout_probes_fill_the_table(preset):
    task = get_preset(preset)
    df = probe_models(
        {"trained": tiny_model(task, conv_size=4)}, task, examples=32, seeds=(0,), max_fact_depth=2, progress=False
    )
    assert set(df["fact"]) == {"successor" if preset == "depo-mini" else "value"}
    assert set(df["fact_depth"]) <= {0, 1, 2} and set(df["baseline"]) == {"pass1", "trained"}
    assert df["acc"].is_between(0, 1).all()


def test_window_must_be_a_context_window():
    task = get_preset("rule110-mini")
    with pytest.raises(ValueError, match="context window"):
        probe_models({"trained": tiny_model(task)}, task, examples=8, window=1, progress=False)


# --- a checkpoint, the table and the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from sleepcore.presets import build
    from sleepcore.train import train

    out = tmp_path_factory.mktemp("tiny")
    train(
        out, *build("tiny", 2, steps=2, eval_every=2, save_every=2, eval_examples=8), progress=False, eval_per_depth=2
    )
    return out


def test_probe_checkpoint_gives_the_schema(tiny_checkpoint):
    from sleepcore.checkpoint import weights_sha256

    df = probe_checkpoint(tiny_checkpoint, examples=64, seeds=(0,), progress=False)
    assert df.schema == pl.Schema(CHECKPOINT_SCHEMA)
    assert df["weights_sha256"].unique().to_list() == [weights_sha256(tiny_checkpoint)]
    assert df["window"].unique().to_list() == [0]  # the last (the only) context window of the tiny task
    assert set(df["baseline"]) == {"pass1", "trained", "random_init"}
    assert set(df.filter(pl.col("baseline") == "pass1")["pass"]) == {1}
    assert set(df["pass"]) == {1, 2} and set(df["layer"]) == {1} and set(df["fact"]) == {"cell_after_steps"}
    assert (df["checkpoint"] == tiny_checkpoint.name).all() and (df["task"] == "rule110").all()
    assert ((df["acc_lo"] <= df["acc"]) & (df["acc"] <= df["acc_hi"])).all()
    assert (df["selectivity"] - (df["acc"] - df["control_acc"])).abs().max() < 1e-12
    assert ((df["n_train"] + df["n_test"]) <= 64).all()
    assert df.equals(df.sort(KEYS))


def test_cli_writes_a_readable_parquet(tiny_checkpoint, tmp_path, capsys):
    from sleepcore.cli import main

    out = tmp_path / "probes.parquet"
    argv = ["probe", str(tiny_checkpoint), "--examples", "32", "--seeds", "0,1", "--max-fact-depth", "2"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    df = pl.read_parquet(out)
    assert df.schema == pl.Schema(CHECKPOINT_SCHEMA)
    assert set(df["seed"]) == {0, 1} and set(df["fact_depth"]) == {0, 1, 2}
    printed = capsys.readouterr().out
    assert "cell_after_steps" in printed and "l1/p2" in printed and str(out) in printed


@pytest.mark.parametrize("fact_depth", [0, 1])
def test_a_query_reads_the_examples_own_facts(tiny_checkpoint, monkeypatch, fact_depth):
    """session.query_fact: one row per cell of the example after fact_depth steps, truth recomputed here."""
    from analysis import session

    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tiny_checkpoint.parent))
    loaded = session.load(tiny_checkpoint.name)
    example = session.seeded_example(loaded.task, 2, seed=3)
    answers = session.query_fact(loaded, example, layer=1, pass_=2, fact_depth=fact_depth, examples=48)
    rows = example.meta["rows"]
    for _ in range(fact_depth):
        rows = [step110(r) for r in rows]
    cells = [str(c) for r in rows for c in r]
    assert answers["item"].to_list() == [f"cell {i}" for i in range(len(cells))]
    assert answers["truth"].to_list() == cells
    assert set(answers["probe"]) <= {"0", "1"}
    assert answers["right"].to_list() == [a == b for a, b in zip(cells, answers["probe"])]
    with pytest.raises(ValueError, match="pass 3 is not recorded"):
        session.query_fact(loaded, example, layer=1, pass_=3, fact_depth=fact_depth, examples=48)


# --- a probes table shipped beside a checkpoint ---------------------------------------------------------------------


def one_probe_row(**change) -> pl.DataFrame:
    schema = CHECKPOINT_SCHEMA
    row = dict.fromkeys(schema, 0) | {c: "x" for c, t in schema.items() if t == pl.String} | change
    return pl.DataFrame([row], schema=schema)


@pytest.fixture
def shipped(tiny_checkpoint, tmp_path, monkeypatch):
    """A copy of the tiny checkpoint as checkpoints/tiny-n2 (SLEEPCORE_CHECKPOINTS), with a probes.parquet."""
    import shutil

    from sleepcore.checkpoint import weights_sha256

    folder = tmp_path / "tiny-n2"
    shutil.copytree(tiny_checkpoint, folder)
    row = one_probe_row(baseline="trained", checkpoint="tiny-n2", task="rule110", weights_sha256=weights_sha256(folder))
    row.write_parquet(folder / "probes.parquet")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    return folder


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda p: p.write_bytes(b"PAR1 not really"), "is not a readable Parquet table"),
        (
            lambda p: pl.DataFrame({"acc": [0.5]}).write_parquet(p),
            "is not a probes table (missing columns ['checkpoint'",
        ),
        (lambda p: one_probe_row().head(0).write_parquet(p), "(missing columns none, 0 rows)"),
        (lambda p: one_probe_row().with_columns(acc=pl.lit("high")).write_parquet(p), "(column types {"),
        (
            lambda p: one_probe_row(task="depo").write_parquet(p),
            "holds probes of task depo, and tiny-n2 is a rule110 model",
        ),
        (
            lambda p: one_probe_row(task="rule110").drop("weights_sha256").write_parquet(p),
            "does not say which weights it was computed on (no weights_sha256 column",
        ),
        (
            lambda p: pl.concat(
                [pl.read_parquet(p), pl.read_parquet(p).with_columns(weights_sha256=pl.lit("0" * 64))]
            ).write_parquet(p),
            "mixes probes of several weights_sha256 values",
        ),
        (
            lambda p: one_probe_row(task="rule110", weights_sha256="0" * 64).write_parquet(p),
            "was computed on other weights than tiny-n2's model.safetensors",
        ),
        (
            lambda p: pl.read_parquet(p).with_columns(weights_sha256=pl.lit(7)).write_parquet(p),
            "is not a probes table (weights_sha256 is Int32, not String)",
        ),
        (
            lambda p: pl.read_parquet(p).drop("window").write_parquet(p),
            "does not say which context window it probed (no window column",
        ),
        (
            lambda p: pl.read_parquet(p).with_columns(window=pl.lit(3, pl.Int32)).write_parquet(p),
            "holds probes of context window 3, and a checkpoint's own probes are of its last, 0: keep such a table",
        ),
    ],
)
def test_a_damaged_shipped_probes_table_says_why_and_how_to_redo_it(shipped, damage, says):
    from analysis import session
    from analysis.probes import read_probes

    table = session.shipped_probes("tiny-n2")
    assert table.schema == pl.Schema(CHECKPOINT_SCHEMA)
    assert table["baseline"].to_list() == ["trained"]
    assert read_probes(shipped.parent / "nothing-here") is None
    damage(shipped / "probes.parquet")
    redo = f"write it again with: sleepcore probe tiny-n2 --out {shipped.absolute() / 'probes.parquet'}, adding the"
    for read in (lambda: read_probes(shipped), lambda: session.shipped_probes("tiny-n2")):
        with pytest.raises(ValueError, match=re.escape(redo)) as e:
            read()
        assert says in str(e.value)


def test_session_probes_computes_a_table_where_the_shipped_one_is_damaged(shipped):
    from analysis import session

    assert session.probes("tiny-n2")["baseline"].to_list() == ["trained"]  # the shipped table, as it is
    (shipped / "probes.parquet").write_bytes(b"garbage")
    df = session.probes("tiny-n2", examples=32)
    assert df.schema == pl.Schema(CHECKPOINT_SCHEMA) and set(df["baseline"]) == {"pass1", "trained", "random_init"}


@pytest.mark.parametrize("examples", [0, 1, -4])
def test_a_query_needs_examples_to_fit_the_probe_on(shipped, examples):
    from analysis import session

    loaded = session.load("tiny-n2")
    example = session.seeded_example(loaded.task, 2, seed=3)
    with pytest.raises(ValueError, match=f"must be an integer >= 2; got {examples}"):
        session.query_fact(loaded, example, layer=1, pass_=2, fact_depth=0, examples=examples)


def test_the_probe_command_names_the_flag_and_checks_its_output_first(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    from sleepcore.cli import main

    assert main(["probe", str(tiny_checkpoint), "--seeds=-1,2", "--no-progress"]) == 2
    assert "--seeds must be integers >= 0, such as 0,1,2; got [-1]" in capsys.readouterr().err
    monkeypatch.setattr(probes, "probe_checkpoint", lambda *a, **k: pytest.fail("probed before the check"))
    assert main(["probe", str(tiny_checkpoint), "--out", str(tmp_path), "--no-progress"]) == 2
    assert f"--out {tmp_path} is a folder; give a file path" in capsys.readouterr().err


def test_the_probe_lab_says_a_damaged_table_is_not_used_and_offers_to_fit(app_checkpoints, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    import streamlit as st
    from app_fixtures import APP
    from streamlit.testing.v1 import AppTest

    shutil.copytree(app_checkpoints / "tiny-n2", tmp_path / "tiny-n2")
    (tmp_path / "tiny-n2" / "probes.parquet").write_bytes(b"garbage")
    monkeypatch.setenv("SLEEPCORE_CHECKPOINTS", str(tmp_path))
    st.cache_data.clear()  # the app caches the checkpoint names without the folder in its key
    try:
        at = AppTest.from_file(APP, default_timeout=120)
        at.switch_page("views/probes.py")
        at.query_params.update({"ckpt": "tiny-n2"})
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error and len(at.warning) == 1  # one message: the table is not used, and why
        warning = at.warning[0].value
        assert "The probe table shipped with this checkpoint is not used" in warning
        assert "probes.parquet is not a readable Parquet table" in warning
        # the command that writes it again, for the folder the app serves
        out = tmp_path.absolute() / "tiny-n2" / "probes.parquet"
        assert f"SLEEPCORE_CHECKPOINTS={tmp_path} sleepcore probe tiny-n2 --out {out}" in warning
        at.select_slider(key="probe_examples").set_value(64)
        at.button(key="fit_probes").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(c.proto.id.endswith("-probe_trained") for c in at.get("plotly_chart"))
    finally:
        st.cache_data.clear()


def test_probes_on_a_changed_task_say_so_and_never_replace_the_checkpoints_own(tmp_path, capsys, monkeypatch):
    """gsm chains longer than trained, probed: the table says what changed, and a checkpoint folder's probes.parquet
    (which the app reads as its probes on the trained task) is never written with it, nor read when copied there."""
    import shutil

    from sleepcore.checkpoint import CHECKPOINT_ROOT
    from sleepcore.cli import main

    shipped, ckpt = CHECKPOINT_ROOT / "gsm-chain-1w-long-n4", tmp_path / "gsm-chain-1w-long-n4"
    shutil.copytree(shipped, ckpt)
    own = (ckpt / "probes.parquet").read_bytes()  # it ships its probes on the trained task
    deeper = ["--set", "task.max_depth=6", "--set", "task.depths=[5,6]", "--seeds", "0", "--no-progress"]
    fast = [*deeper, "--examples", "16", "--max-fact-depth", "1"]
    real = probes.probe_checkpoint
    monkeypatch.setattr(probes, "probe_checkpoint", lambda *a, **k: pytest.fail("probed before the check"))
    assert main(["probe", str(ckpt), *fast, "--out", str(ckpt / "probes.parquet")]) == 2
    assert "is a checkpoint's own probes.parquet" in capsys.readouterr().err
    assert (ckpt / "probes.parquet").read_bytes() == own
    assert main(["probe", str(ckpt), "--set", "task.window=64", "--no-progress"]) == 2
    assert r"window=64 changes the context window (48 → 64)" in capsys.readouterr().err
    assert main(["probe", str(ckpt), "--set", "sleep.passes=2", "--no-progress"]) == 2
    assert "--set changes only task settings here" in capsys.readouterr().err
    monkeypatch.setattr(probes, "probe_checkpoint", real)
    assert main(["probe", str(ckpt), *fast, "--out", str(tmp_path / "deep.parquet")]) == 0
    assert capsys.readouterr().out.startswith("on a changed task: depths=[5, 6], max_depth=6\n")
    deep = pl.read_parquet(tmp_path / "deep.parquet")
    assert deep["task_changed"].unique().to_list() == ["depths=[5, 6], max_depth=6"]
    assert set(deep["fact_depth"]) == {0, 1} and set(deep["baseline"]) == {"pass1", "trained", "random_init"}
    plain = probes.probe_checkpoint(ckpt, examples=16, seeds=(0,), max_fact_depth=1, progress=False)
    assert "task_changed" not in plain.columns  # the trained task: the table of before
    assert not plain.drop(["checkpoint"]).equals(deep.drop(["checkpoint", "task_changed"]))  # other examples
    shutil.copy(tmp_path / "deep.parquet", ckpt / "probes.parquet")  # copied in by hand: the app must not show it
    with pytest.raises(ValueError, match=r"was computed on a changed task \(depths=\[5, 6\], max_depth=6\), not the"):
        probes.read_probes(ckpt)


def test_a_probes_table_beside_damaged_weights_names_the_weights(shipped):
    from analysis.probes import read_probes
    from sleepcore.checkpoint import CheckpointError

    one_probe_row(task="rule110", weights_sha256="0" * 64).write_parquet(shipped / "probes.parquet")
    weights = shipped / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # cut short: a copy that stopped half-way
    with pytest.raises(CheckpointError, match="so tiny-n2's weights are damaged \\(not its probes.parquet, which"):
        read_probes(shipped)


def test_the_probe_command_writes_only_the_last_windows_probes_as_a_checkpoints_own(tmp_path, capsys, monkeypatch):
    """A checkpoint's probes.parquet holds its probes of the last context window (the app shows them as such); an
    earlier window's go elsewhere, and the last one named by its index is the last one."""
    import shutil

    from sleepcore.checkpoint import CHECKPOINT_ROOT
    from sleepcore.cli import main

    ckpt = tmp_path / "gsm-mini-n4"
    shutil.copytree(CHECKPOINT_ROOT / "gsm-mini-n4", ckpt)
    assert not (ckpt / "probes.parquet").exists()
    windows = probes.task_for(probes.read_info(ckpt), None)[0].context_windows
    assert windows == 2
    real = probes.probe_checkpoint
    monkeypatch.setattr(probes, "probe_checkpoint", lambda *a, **k: pytest.fail("probed before the check"))
    argv = [
        "probe",
        str(ckpt),
        "--examples",
        "16",
        "--seeds",
        "0",
        "--no-progress",
        "--out",
        str(ckpt / "probes.parquet"),
    ]
    assert main([*argv, "--window", "0"]) == 2
    assert "write probes of --window 0 elsewhere" in capsys.readouterr().err
    assert main([*argv, "--window", str(windows)]) == 2
    assert f"window must pick one of the {windows} context window(s)" in capsys.readouterr().err
    assert not (ckpt / "probes.parquet").exists()
    monkeypatch.setattr(probes, "probe_checkpoint", real)
    assert main([*argv, "--window", str(windows - 1), "--max-fact-depth", "1"]) == 0
    table = probes.read_probes(ckpt)
    assert set(table["fact_depth"]) == {0, 1} and table["window"].unique().to_list() == [windows - 1]
    earlier = tmp_path / "window0.parquet"
    assert main([*argv[:-1], str(earlier), "--window", "0", "--max-fact-depth", "1"]) == 0
    assert pl.read_parquet(earlier)["window"].unique().to_list() == [0]
    shutil.copy(earlier, ckpt / "probes.parquet")  # copied in by hand: not the probes the app shows as its own
    with pytest.raises(ValueError, match="holds probes of context window 0, and a checkpoint's own probes are of its"):
        probes.read_probes(ckpt)


def test_the_probe_command_never_writes_one_checkpoints_probes_as_anothers(tmp_path, capsys, monkeypatch):
    import shutil

    from sleepcore.checkpoint import CHECKPOINT_ROOT
    from sleepcore.cli import main

    other = tmp_path / "rule110-mini-n1"
    shutil.copytree(CHECKPOINT_ROOT / "rule110-mini-n1", other)
    own = (other / "probes.parquet").read_bytes()
    monkeypatch.setattr(probes, "probe_checkpoint", lambda *a, **k: pytest.fail("probed before the check"))
    argv = ["probe", "rule110-mini-n4", "--no-progress", "--out", str(other / "probes.parquet")]
    assert main(argv) == 2
    assert "is the probes.parquet of checkpoint rule110-mini-n1, not of rule110-mini-n4" in capsys.readouterr().err
    assert (other / "probes.parquet").read_bytes() == own
