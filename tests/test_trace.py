"""Traces record what the model computes, build the tables of docs/TRACE_SCHEMA.md, and write/load exactly."""

import hashlib
import json
from collections import Counter

import polars as pl
import pytest
import torch

from sleepcore.checkpoint import checkpoint_info
from sleepcore.cli import main
from sleepcore.data import collate
from sleepcore.model import SleepModel
from sleepcore.presets import build
from sleepcore.tasks import get_task
from sleepcore.trace import TraceError, load_trace, record_trace, sample_examples, sleep_passes, write_trace
from sleepcore.train import train

N = 3


def setup(preset="tiny", passes=N, variant="hybrid"):
    configs = build(preset, passes, variant)
    torch.manual_seed(0)
    model = SleepModel(configs[0], configs[1]).eval()
    task = get_task(configs[2].name, **configs[2].params)
    return model, checkpoint_info(*configs), sample_examples(task, 8, seed=0)


@pytest.fixture(scope="module")
def tiny():
    return setup()


@pytest.fixture(scope="module")
def trace(tiny):
    model, info, examples = tiny
    return record_trace(model, info, examples, checkpoint="tiny", seed=0)


@pytest.fixture(scope="module")
def written(trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("trace")
    write_trace(trace, out)
    return out


def col(df, name: str) -> torch.Tensor:
    return torch.tensor(df[name].to_numpy())


def run(model, examples, passes=None):
    batch = collate(examples)
    with torch.no_grad():
        return model(batch["tokens"], batch["loss_mask"], passes=passes), batch


def test_last_recorded_state_is_the_state_the_model_returns(tiny):
    model, info, examples = tiny
    out, _ = run(model, examples)
    last = len(model.windows(len(examples[0].tokens))) - 1  # the wake window: one pass
    # Recording only states keeps the model on its ordinary path (SDPA attention), so the states agree bitwise.
    only_states = record_trace(model, info, examples, checkpoint="tiny", seed=0, anytime=False, include=("*/fw.state",))
    assert torch.equal(only_states.state(last, 1, 1), out.states[1])
    # Recording attention probabilities computes attention explicitly: equal up to rounding.
    full = record_trace(model, info, examples, checkpoint="tiny", seed=0, anytime=False)
    torch.testing.assert_close(full.state(last, 1, 1), out.states[1], rtol=1e-5, atol=1e-6)


def test_state_table_norms_and_deltas_match_the_stored_tensors(trace):
    state = trace.tables["state"]
    assert state.height == 8 * 2 * (N + 1)  # examples × heads × (N context passes + 1 wake pass), one fw layer
    prev = torch.zeros_like(trace.state(0, 1, 1))
    for w, passes in ((0, N), (1, 1)):
        for p in range(1, passes + 1):
            S = trace.state(w, p, 1)  # [K, H, K, V]
            rows = state.filter((state["window"] == w) & (state["pass"] == p))
            norm = col(rows, "norm").view(8, 2)
            delta = col(rows, "delta").view(8, 2)
            # the table is computed in float64 from the stored float32 tensor: equal to float32 rounding
            torch.testing.assert_close(norm, torch.linalg.norm(S, dim=(-2, -1)).double(), rtol=1e-6, atol=1e-9)
            torch.testing.assert_close(delta, torch.linalg.norm(S - prev, dim=(-2, -1)).double(), rtol=1e-6, atol=1e-9)
            prev = S  # the wake window's pass 1 is measured against the context window's last pass
    assert (state["rel_delta"] - state["delta"] / state["norm"]).abs().max() < 1e-12


def test_each_record_point_fires_once_per_window_pass_and_layer(tiny):
    model, info, examples = tiny
    t = record_trace(model, info, examples, checkpoint="tiny", seed=0, anytime=False, include=("*",))
    counts = Counter(name.rsplit("/", 1)[1] for name in t.tensors)
    runs = N + 1  # block-stack runs: N passes over the context window, one over the wake window
    assert counts == {
        "embed": 2,
        "input": runs,
        "hidden": 2 * runs,  # two layers
        "attn.probs": runs,
        "fw.state": runs,
        "fw.readout": runs,
        "fw.beta": runs,
        "fw.g": runs,
        "logits": 1,
    }
    assert {f"window.0/pass.{p}/layer.1/fw.state" for p in range(1, N + 1)} < set(t.tensors)
    assert all(v.dtype == torch.float32 and v.is_contiguous() and v.device.type == "cpu" for v in t.tensors.values())


def test_default_trace_keeps_what_the_views_need_and_hidden_norms_only(trace):
    kinds = {name.rsplit("/", 1)[1] for name in trace.tensors}
    assert kinds == {"fw.state", "attn.probs", "logits"}
    assert trace.attn(0, N, 0).shape == (8, 2, 17, 17) and trace.logits(1).shape[:2] == (8, 17)
    assert trace.tables["hidden"].height == 8 * 2 * (N + 1) * 17  # examples × layers × runs × window
    with pytest.raises(KeyError, match="not in this trace"):
        trace.state(0, 1, 0)  # layer 0 is attention


def test_anytime_rows_are_the_models_own_predictions(tiny, trace):
    model, _, examples = tiny
    anytime = trace.anytime
    scored = sum(sum(ex.loss_mask) for ex in examples)
    assert anytime.height == scored * N and sorted(anytime["n"].unique().to_list()) == list(range(1, N + 1))
    for n in range(1, N + 1):
        out, batch = run(model, examples, passes=None if n == N else n)
        mask = batch["loss_mask"]
        rows = anytime.filter(anytime["n"] == n)
        assert rows["predicted"].to_list() == out.logits.argmax(-1)[mask].tolist()
        assert rows["target"].to_list() == batch["targets"][mask].tolist()
        p = out.logits[mask].double().softmax(-1).gather(-1, batch["targets"][mask][:, None])[:, 0]
        torch.testing.assert_close(col(rows, "p_target"), p, rtol=1e-4, atol=1e-6)
    assert (anytime["correct"] == (anytime["predicted"] == anytime["target"])).all()
    tokens = trace.tables["tokens"]
    depths = tokens.filter(tokens["scored"])["depth"].to_list()
    assert anytime.filter(anytime["n"] == 1)["depth"].to_list() == depths
    assert [tokens.filter(tokens["example"] == i)["depth"].max() for i in range(8)] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_write_then_load_round_trips_exactly(trace, written):
    back = load_trace(written)
    assert back.tensors.keys() == trace.tensors.keys()
    for k, v in trace.tensors.items():
        assert back.tensors[k].dtype == v.dtype and torch.equal(back.tensors[k], v), k
    for name, df in trace.tables.items():
        assert back.tables[name].schema == df.schema and back.tables[name].equals(df), name
    assert {k: v for k, v in back.meta.items() if k != "files"} == trace.meta
    assert back.meta["passes"] == N and back.meta["split"] == "test" and len(back.meta["windows"]) == 2


def test_same_inputs_give_byte_identical_files(tiny, written, tmp_path):
    model, info, examples = tiny
    write_trace(record_trace(model, info, examples, checkpoint="tiny", seed=0), tmp_path)
    names = sorted(p.name for p in written.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "anytime.parquet",
        "hidden.parquet",
        "meta.json",
        "state.parquet",
        "tensors.safetensors",
        "tokens.parquet",
    ]
    for name in names:
        assert (written / name).read_bytes() == (tmp_path / name).read_bytes(), name


def copy_of(written, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    for p in written.iterdir():
        (out / p.name).write_bytes(p.read_bytes())
    return out


@pytest.mark.parametrize("name", ["state.parquet", "tensors.safetensors", "anytime.parquet"])
def test_a_changed_byte_is_caught_and_the_file_named(written, tmp_path, name):
    out = copy_of(written, tmp_path)
    data = bytearray((out / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (out / name).write_bytes(bytes(data))
    with pytest.raises(TraceError, match=rf"{name}.*hash mismatch"):
        load_trace(out)


def test_a_deleted_file_is_named(written, tmp_path):
    out = copy_of(written, tmp_path)
    (out / "hidden.parquet").unlink()
    with pytest.raises(TraceError, match=r"hidden\.parquet is missing"):
        load_trace(out)


def test_bad_meta_json_is_a_clear_error(written, tmp_path):
    out = copy_of(written, tmp_path)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "format": 2}))
    with pytest.raises(TraceError, match="format 1"):
        load_trace(out)
    (out / "meta.json").write_text(json.dumps({**meta, "files": {**meta["files"], "../x": "0"}}))
    with pytest.raises(TraceError, match="outside the trace folder"):
        load_trace(out)
    (out / "meta.json").write_text('{"format": 1, "files": ')
    with pytest.raises(TraceError, match="meta.json is not valid JSON"):
        load_trace(out)
    (out / "meta.json").unlink()
    with pytest.raises(TraceError, match="meta.json is missing"):
        load_trace(out)


def test_unreadable_file_with_a_matching_hash_is_named(written, tmp_path):
    out = copy_of(written, tmp_path)
    (out / "tokens.parquet").write_bytes(b"not parquet")
    meta = json.loads((out / "meta.json").read_text())
    meta["files"]["tokens.parquet"] = hashlib.sha256(b"not parquet").hexdigest()
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(TraceError, match=r"tokens\.parquet is unreadable"):
        load_trace(out)


def test_states_chain_across_context_windows_and_a_mini_trace_is_small(tmp_path):
    model, info, examples = setup("gsm-mini", passes=4)  # two context windows, then a wake window
    t = record_trace(model, info, examples, checkpoint="gsm-mini", seed=0)
    assert [w["kind"] for w in t.meta["windows"]] == ["context", "context", "wake"]
    state = t.tables["state"]
    for layer in (1, 3):
        row = state.filter((state["window"] == 1) & (state["pass"] == 1) & (state["layer"] == layer))
        expected = torch.linalg.norm(t.state(1, 1, layer) - t.state(0, 4, layer), dim=(-2, -1)).double()
        torch.testing.assert_close(col(row, "delta").view(8, 2), expected, rtol=1e-6, atol=1e-9)
    meta = write_trace(t, tmp_path)
    assert sum((tmp_path / n).stat().st_size for n in [*meta["files"], "meta.json"]) < 50e6


def test_a_wake_loop_trace_holds_its_passes_on_the_window_it_answers_from():
    model, info, examples = setup("gsm-mini", passes=3, variant="wake-loop")  # two context windows, then wake
    t = record_trace(model, info, examples, checkpoint="gsm-mini-wake-loop-n3", seed=0)
    assert t.meta["loop"] == "wake" and t.meta["passes"] == 3 and sleep_passes(t.meta) == 1
    state = t.tables["state"]
    passes = state.group_by("window").agg(pl.col("pass").max()).sort("window")["pass"].to_list()
    assert passes == [1, 1, 3]
    for layer in (1, 3):
        rows = state.filter((state["window"] == 2) & (state["layer"] == layer)).sort("pass", "example", "head")
        before = [t.state(1, 1, layer), t.state(2, 1, layer), t.state(2, 2, layer)]  # S_{p−1}, S_0 = window 1's
        for p in (1, 2, 3):
            expected = torch.linalg.norm(t.state(2, p, layer) - before[p - 1], dim=(-2, -1)).double()
            torch.testing.assert_close(col(rows.filter(rows["pass"] == p), "delta").view(8, 2), expected)
    out, _ = run(model, examples)
    torch.testing.assert_close(t.state(2, 1, 3), out.states[3], rtol=1e-5, atol=1e-6)  # pass 1's S is carried on
    assert (t.state(2, 3, 3) - out.states[3]).abs().max() > 1e-4  # and not the last pass's
    for n in (1, 2, 3):  # the anytime readout at n is the wake loop truncated at n passes
        out, batch = run(model, examples, passes=n)
        rows = t.anytime.filter(t.anytime["n"] == n).sort("example", "position")
        assert rows["predicted"].to_list() == out.logits[batch["loss_mask"]].argmax(-1).tolist()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    train(
        out, *build("tiny", 2, steps=2, eval_every=2, save_every=2, eval_examples=8), progress=False, eval_per_depth=2
    )
    return out


def test_cli_writes_a_trace_of_a_checkpoint(checkpoint, tmp_path, capsys):
    out = tmp_path / "trace"
    assert main(["trace", str(checkpoint), "--examples", "3", "--seed", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tensors.safetensors" in printed and "anytime.parquet" in printed and " s\n" in printed
    t = load_trace(out)
    sha = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert t.meta["checkpoint_sha256"] == sha and t.meta["checkpoint"] == checkpoint.name
    assert t.meta["examples"] == 3 and t.meta["seed"] == 5 and t.meta["passes"] == 2
    assert t.tables["tokens"]["example"].n_unique() == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-checkpoint"], "no checkpoint at 'no-such-checkpoint'"),
        (["CKPT", "--examples", "0"], "examples must be a positive integer"),
        (["CKPT", "--passes", "0"], "passes"),
        (["CKPT", "--passes", "100000"], "passes must be at most 64"),  # refused, not run for hours
        (["CKPT", "--examples", "1025"], "examples must be at most 1024; got 1025"),  # refused, not run out of memory
        (["CKPT", "--set", "task.hops=2"], r"unknown parameter(s) hops for task 'rule110'; valid parameters:"),
        (["CKPT", "--set", "model.d_model=8"], "--set changes only task settings here"),
    ],
)
def test_cli_errors_are_one_clear_line(checkpoint, tmp_path, capsys, args, message):
    args = [str(checkpoint) if a == "CKPT" else a for a in args]
    assert main(["trace", *args, "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sleepcore trace: error:") and message in err and err.count("\n") == 1


def test_a_trace_on_a_changed_task_records_the_change_and_its_examples_follow_it(tmp_path, capsys):
    """gsm chains longer than trained, traced: meta.json holds the task the examples came from, and what changed."""
    from sleepcore.checkpoint import CHECKPOINT_ROOT

    ckpt, out = CHECKPOINT_ROOT / "gsm-chain-1w-long-n4", tmp_path / "deep"
    deeper = ["--set", "task.max_depth=6", "--set", "task.depths=[5,6]", "--examples", "2"]
    assert main(["trace", str(ckpt), *deeper, "--out", str(out)]) == 0
    assert "on a changed task: depths [1, 2, 3, 4] → [5, 6], max_depth 4 → 6" in capsys.readouterr().out
    t = load_trace(out)
    assert t.meta["task_changed"] == {"depths": [[1, 2, 3, 4], [5, 6]], "max_depth": [4, 6]}
    assert t.meta["task"]["params"]["depths"] == [5, 6] and t.meta["task"]["params"]["max_depth"] == 6
    task = get_task("gsm", **t.meta["task"]["params"])
    again = sample_examples(task, 2, 0)  # the examples are those of the changed task: the tokens say so
    assert t.tables["tokens"].filter(pl.col("example") == 1)["token"].to_list() == [
        task.vocab.tokens[i] for i in again[1].tokens
    ]
    assert [ex.depth[0] for ex in again] == [5, 6]  # the question, first: 5 and 6 operations deep
    assert main(["trace", str(ckpt), "--examples", "1", "--out", str(tmp_path / "plain")]) == 0
    assert "task_changed" not in load_trace(tmp_path / "plain").meta  # the trained task: no entry, as before
