"""Integrated gradients through sleep: completeness, the reported slice, Depo's true path and path recall."""

import polars as pl
import pytest
import torch

from analysis.attribution import SCHEMA, attribute, depo_paths, integrated_gradients, path_recall
from sleepcore.config import ModelConfig, SleepConfig
from sleepcore.model import SleepModel
from sleepcore.presets import INJECT, PRESETS, build
from sleepcore.tasks import TASK_PRESETS, get_task

# A hand-built Depo example: cycle n0→n1→n2→n3→n4→n0, edges shown in the order e0..e4 below, after 14 pads.
#   e0 = n2 n3 (positions 14, 15)  e1 = n0 n1 (16, 17)  e2 = n4 n0 (18, 19)  e3 = n1 n2 (20, 21)  e4 = n3 n4 (22, 23)
# Queries (window 2): <q2> n3 → n0 scored at 26, <q1> n1 → n2 scored at 30, <q4> n0 → n4 scored at 34.
DEPO_TEXT = " ".join(
    ["<pad>"] * 14
    + "n2 n3 n0 n1 n4 n0 n1 n2 n3 n4".split()
    + "<q2> n3 <ans> n0 <q1> n1 <ans> n2 <q4> n0 <ans> n4".split()
    + ["<pad>"] * 12
)
DEPO_PATHS = {26: {4, 2}, 30: {3}, 34: {1, 3, 0, 4}}


def nonlinear(model: SleepModel, std: float = 0.05) -> SleepModel:
    """Weights larger than the 0.02 init, so the answer logit is not nearly linear in the embeddings."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, std)
    return model.eval()


@pytest.fixture(scope="module")
def rule110():
    m, s, t, _ = build("tiny", passes=2)
    task = get_task(t.name, **t.params)
    return nonlinear(SleepModel(m, s)), task, task.sample(1, seed=1)[0]


@pytest.fixture(scope="module")
def depo():
    task = get_task("depo", **TASK_PRESETS["depo-mini"][1])
    model = ModelConfig(**dict(PRESETS["tiny"].model, vocab_size=len(task.vocab), max_positions=task.window))
    return nonlinear(SleepModel(model, SleepConfig(**dict(INJECT, passes=2, window=task.window)))), task


def logit_gap(model, example, positions, passes):
    """logit(input) − logit(all-<pad> baseline) of each position's target, computed without captum."""
    tokens, mask = torch.tensor([example.tokens]), torch.tensor([example.loss_mask])
    with torch.no_grad():
        embeds = model.tok(tokens)
        baseline = model.tok.weight[0].expand_as(embeds)
        full = model(tokens, mask, passes=passes, embeds=embeds).logits[0]
        pad = model(tokens, mask, passes=passes, embeds=baseline).logits[0]
    return torch.tensor([float(full[p, example.targets[p]] - pad[p, example.targets[p]]) for p in positions])


def test_attributions_over_all_positions_sum_to_the_logit_gap(rule110):
    model, _, ex = rule110
    positions = [p for p, m in enumerate(ex.loss_mask) if m][:3]
    attr, delta = integrated_gradients(model, ex, positions, 2, n_steps=32, internal_batch_size=8)
    gap = logit_gap(model, ex, positions, 2)
    total = attr.sum(-1).double()
    assert attr.shape == (3, len(ex.tokens))
    assert gap.abs().min() > 1e-3  # a gap worth checking
    assert ((total - gap).abs() <= 1e-2 * gap.abs()).all(), (total, gap)
    assert torch.allclose(delta.double(), total - gap, atol=1e-5)  # captum's delta is exactly this error
    assert attr[:, :17].abs().sum() > 0  # the evicted window (positions 0..16) reaches the answer through S


def test_table_is_exactly_the_context_part_for_each_n(rule110):
    model, task, ex = rule110
    positions = [p for p, m in enumerate(ex.loss_mask) if m][:2]
    df = attribute(model, [ex], task, n_steps=8, internal_batch_size=4, positions=positions)
    assert dict(zip(df.columns, df.dtypes)) == SCHEMA
    assert df.height == 2 * 2 * 17  # positions × n = 1..2 × the 17 tokens of the one evicted window
    assert df.equals(df.sort("example", "position", "n", "source_position"))
    assert df["on_path"].is_null().all() and (df["edge"] == -1).all()  # no path outside Depo
    by_n = {}
    for n in (1, 2):
        attr, delta = integrated_gradients(model, ex, positions, n, n_steps=8, internal_batch_size=4)
        by_n[n] = attr
        for j, p in enumerate(positions):
            rows = df.filter((pl.col("position") == p) & (pl.col("n") == n))
            assert rows["source_position"].to_list() == list(range(17))
            assert (rows["source_window"] == 0).all()
            assert rows["token"].to_list() == task.vocab.decode(ex.tokens[:17])
            assert rows["attribution"].to_list() == attr[j, :17].tolist()
            assert (rows["delta"] == float(delta[j])).all()
            assert (rows["depth"] == ex.depth[0]).all()
    assert not torch.allclose(by_n[1], by_n[2])  # truncating sleep changes what the answer draws on


def test_depo_paths_of_a_hand_built_example():
    task = get_task("depo", **TASK_PRESETS["depo-mini"][1])
    ex = task.parse(DEPO_TEXT)
    edge_of, path = depo_paths(task, ex)
    assert edge_of[:14] == [-1] * 14 and edge_of[24:] == [-1] * 24
    assert edge_of[14:24] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert path == DEPO_PATHS


def test_depo_paths_walk_the_cycle_with_multi_token_names():
    task = get_task("depo", n_min=4, n_max=8, names=6, name_tokens=2, context_windows=1, window=40, queries=3)
    for ex in task.sample(10, seed=3):
        edges, cycle = ex.meta["edges"], ex.meta["cycle"]
        edge_of, path = depo_paths(task, ex)
        for t, e in enumerate(edge_of):
            if e >= 0:
                assert task.vocab.tokens[ex.tokens[t]] in " ".join(edges[e]).replace("_", " ").split()
        queries = iter(q for q in ex.meta["queries"] for _ in q["a"].split("_"))
        for p in sorted(path):
            q = next(queries)
            i = cycle.index(q["q"])
            expected = {
                edges.index([cycle[(i + s) % len(cycle)], cycle[(i + s + 1) % len(cycle)]]) for s in range(q["k"])
            }
            assert path[p] == expected


def test_depo_table_marks_the_true_path_and_zeroes_padding(depo):
    model, task = depo
    ex = task.parse(DEPO_TEXT)
    df = attribute(model, [ex], task, n_steps=8, internal_batch_size=8)
    assert sorted(df["position"].unique().to_list()) == [26, 30, 34]
    assert sorted(df["n"].unique().to_list()) == [1, 2]
    for p, edges in DEPO_PATHS.items():
        rows = df.filter((pl.col("position") == p) & (pl.col("n") == 1))
        on = rows.filter(pl.col("on_path"))["source_position"].to_list()
        assert on == sorted(t for t in range(14, 24) if (t - 14) // 2 in edges)
    pads = df.filter(pl.col("source_position") < 14)
    assert (pads["attribution"] == 0).all()  # input equals the baseline there
    assert df.filter(pl.col("source_position") >= 14)["attribution"].abs().min() > 0
    recall = path_recall(df)
    assert recall["answers"].to_list() == [1, 1, 1, 1, 1, 1]  # (n, depth) for n = 1, 2 and depths 1, 2, 4
    assert recall.filter(pl.col("depth") == 4)["uniform_share"].to_list() == [0.8, 0.8]


def synthetic(attribution_of) -> pl.DataFrame:
    """One Depo answer (depth 2, path = edges 2 and 4 of 5) at n = 1, over 2 pads and 5 two-token edges."""
    rows = []
    for t in range(12):
        edge = (t - 2) // 2 if t >= 2 else -1
        rows.append(
            dict(
                example=0,
                position=26,
                n=1,
                source_position=t,
                source_window=0,
                token=f"x{t}",
                attribution=attribution_of(t, edge),
                delta=0.0,
                on_path=edge in (2, 4),
                depth=2,
                edge=edge,
            )
        )
    return pl.DataFrame(rows, schema=SCHEMA)


def test_path_recall_against_an_even_spread_and_random_edges():
    even = path_recall(synthetic(lambda t, e: 0.0 if e < 0 else (1.0 if t % 2 else -1.0)))
    row = even.row(0, named=True)
    assert (row["n"], row["depth"], row["answers"]) == (1, 2, 1)
    assert row["path_share"] == pytest.approx(0.4)  # |attribution| evenly over edges: exactly path edges / edges
    assert row["uniform_share"] == pytest.approx(2 / 5)
    assert row["random_share"] == pytest.approx(0.4)  # every random 2-edge set holds the same share
    on_path = path_recall(synthetic(lambda t, e: 3.0 if e in (2, 4) else 0.0), draws=4000).row(0, named=True)
    assert on_path["path_share"] == pytest.approx(1.0)
    assert on_path["uniform_share"] == pytest.approx(0.4)
    assert on_path["random_share"] == pytest.approx(0.4 * 1.0, abs=0.03)  # E[share of a random set] = 2/5 · 1
    assert on_path["path_share_lo"] == on_path["path_share_hi"] == 1.0  # one answer: nothing to resample


def test_path_recall_refuses_tables_without_a_path():
    with pytest.raises(ValueError, match="Depo"):
        path_recall(synthetic(lambda t, e: 1.0).with_columns(edge=pl.lit(-1, pl.Int32)))
    with pytest.raises(ValueError, match="depth"):
        path_recall(synthetic(lambda t, e: 1.0).drop("depth"))


def test_bad_requests_fail_clearly(rule110):
    model, task, ex = rule110
    with pytest.raises(ValueError, match="not scored"):
        integrated_gradients(model, ex, [0], 1)
    with pytest.raises(ValueError, match="passes must be >= 1"):
        attribute(model, [ex], task, passes=0)


@pytest.fixture(scope="module")
def depo_checkpoint(tmp_path_factory):
    from sleepcore.train import train

    out = tmp_path_factory.mktemp("attr") / "depo-tiny"
    configs = build("depo-mini", 2, steps=2, eval_every=2, save_every=2, eval_examples=8)
    train(out, *configs, progress=False, eval_per_depth=2)
    return out


def test_checkpoint_attributions_equal_the_library_call_and_report_path_recall(depo_checkpoint, tmp_path, capsys):
    from analysis.attribution import attribute_checkpoint, format_attributions
    from sleepcore.checkpoint import configs_from, load_checkpoint
    from sleepcore.cli import main

    df = attribute_checkpoint(depo_checkpoint, examples=1, seed=3, passes=[1, 2], n_steps=4, progress=False)
    model, info = load_checkpoint(depo_checkpoint)
    t = configs_from(info)[2]
    task = get_task(t.name, **t.params)
    direct = attribute(model, task.sample(1, 3, split="test"), task, n_steps=4, passes=[1, 2])
    assert df.equals(direct)
    text = format_attributions(df)
    assert "Depo path recall" in text and "random_share" in text
    out = tmp_path / "attr.parquet"
    argv = ["attribute", str(depo_checkpoint), "-K", "1", "--seed", "3", "--passes", "1,2", "--n-steps", "4"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert pl.read_parquet(out).equals(df)
    assert "path_share" in capsys.readouterr().out


def test_rule110_attributions_have_no_path_table(rule110):
    from analysis.attribution import format_attributions

    model, task, example = rule110
    text = format_attributions(attribute(model, [example], task, n_steps=4, passes=[1]))
    assert "mean_abs_delta" in text and "path recall" not in text
    with pytest.raises(ValueError, match="examples must be from 1 to 1024"):
        from analysis.attribution import attribute_checkpoint

        attribute_checkpoint("nowhere", examples=0)


@pytest.mark.parametrize("n_steps", [0, -3])
def test_integration_steps_must_be_positive(rule110, n_steps):
    from analysis.attribution import attribute_checkpoint

    model, task, ex = rule110
    scored = [p for p, m in enumerate(ex.loss_mask) if m]
    with pytest.raises(ValueError, match=r"n_steps \(--n-steps: integration steps\) must be an integer >= 1"):
        integrated_gradients(model, ex, scored[:1], 1, n_steps=n_steps)
    with pytest.raises(ValueError, match="must be an integer >= 1, such as 32"):
        attribute_checkpoint("nowhere", n_steps=n_steps)  # before the checkpoint is even looked for


def test_the_attribute_command_refuses_zero_integration_steps(capsys):
    from sleepcore.cli import main

    assert main(["attribute", "nowhere", "--n-steps", "0", "--no-progress"]) == 2
    assert "--n-steps: integration steps) must be an integer >= 1" in capsys.readouterr().err


def test_a_position_outside_the_example_names_the_scored_ones(rule110):
    from analysis import session

    model, task, ex = rule110
    scored = [p for p, m in enumerate(ex.loss_mask) if m]
    loaded = session.Loaded("m", model, {}, task, "")
    for bad in (999, -1, 0):
        with pytest.raises(ValueError, match=rf"positions \[{bad}\] are not scored") as e:
            session.attributions(loaded, ex, 1, positions=[bad])
        assert str(scored) in str(e.value)


def test_passes_beyond_the_trained_n_run_more_sleep_up_to_the_cap(rule110):
    model, task, ex = rule110
    scored = [p for p, m in enumerate(ex.loss_mask) if m][:1]
    df = attribute(model, [ex], task, n_steps=2, passes=[3, 3], positions=scored)  # trained N = 2; repeats once
    assert df["n"].unique().to_list() == [3]
    assert df["attribution"].abs().sum() > 0
    with pytest.raises(ValueError, match="passes must be at most 64"):
        attribute(model, [ex], task, passes=[1, 65])
