"""The benchmarks run on tiny settings and write the tables they promise (structure only: speed is not tested)."""

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sleepcore.bench as bench
import sleepcore.layers
from sleepcore import kernel_resources
from sleepcore.bench import (
    LATENCY_COLUMNS,
    SLEEP_COLUMNS,
    SPEEDUP_COLUMNS,
    TRAIN_COLUMNS,
    LatencySettings,
    TrainSettings,
    free_op,
    latency_ratios,
    table,
)
from sleepcore.bench_ops import OPS_COLUMNS, PASSES, OpsSettings, chunk_flops, min_bytes, ops_bench, shipped_shapes
from sleepcore.checkpoint import available
from sleepcore.cli import main
from sleepcore.ops import fast_weight


def read(path) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return reader.fieldnames, rows


def test_bench_latency_writes_its_tables(tmp_path, capsys):
    assert main(["bench", "latency", "--quick", "--out", str(tmp_path)]) == 0
    s = LatencySettings.quick()
    columns, rows = read(tmp_path / "latency.csv")
    assert columns == LATENCY_COLUMNS
    assert [(r["model"], int(r["context"])) for r in rows] == [
        (m, c)
        for m in (f"sleep (L={s.window})", f"wake loop (L={s.window}, N={s.wake_loop})", "full attention")
        for c in s.contexts
    ]
    for r in rows:
        assert float(r["median_ms"]) > 0 and int(r["tokens"]) == s.tokens
        assert int(r["cache_bytes"]) == int(r["kv_bytes"]) + int(r["state_bytes"])
    sleep_rows = [r for r in rows if r["model"].startswith("sleep")]
    full = [r for r in rows if r["model"] == "full attention"]
    # hard eviction: at most one window of KV whatever the context; full attention holds all of it
    assert len({r["kv_bytes"] for r in sleep_rows}) == 1 and int(sleep_rows[0]["state_bytes"]) > 0
    assert int(full[1]["kv_bytes"]) > int(full[0]["kv_bytes"]) > int(sleep_rows[0]["kv_bytes"])
    # the wake loop holds one window's KV and S per pass, also whatever the context
    loop_rows = [r for r in rows if r["model"].startswith("wake loop")]
    assert {int(r["kv_bytes"]) for r in loop_rows} == {s.wake_loop * int(sleep_rows[0]["kv_bytes"])}
    columns, sleeps = read(tmp_path / "sleep.csv")
    assert columns == SLEEP_COLUMNS and [int(r["passes"]) for r in sleeps] == list(s.sleep_passes)
    assert (tmp_path / "latency.html").stat().st_size > 0
    out = capsys.readouterr().out
    assert "Per-token wake latency" in out and "latency(128) / latency(64) for full attention" in out


def test_bench_train_writes_its_tables(tmp_path, capsys):
    assert main(["bench", "train", "--quick", "--out", str(tmp_path)]) == 0
    columns, rows = read(tmp_path / "train.csv")
    assert columns == TRAIN_COLUMNS
    assert [(r["preset"], r["passes"], r["backend"]) for r in rows] == [
        ("tiny", n, b) for n in ("1", "2") for b in ("chunk", "naive", "none")
    ]
    assert all(float(r["tokens_per_s"]) > 0 and r["batch_size"] == "4" for r in rows)
    columns, speed = read(tmp_path / "train_speedup.csv")
    assert columns == SPEEDUP_COLUMNS and [r["passes"] for r in speed] == ["1", "2"]
    tokens_per_s = {(r["passes"], r["backend"]): float(r["tokens_per_s"]) for r in rows}
    for r in speed:
        assert float(r["speedup_cpu"]) > 0 and float(r["speedup"]) == pytest.approx(
            float(r["chunk_tokens_per_s"]) / float(r["naive_tokens_per_s"]), 0.01
        )
        n = r["passes"]
        assert float(r["bound"]) == pytest.approx(tokens_per_s[n, "none"] / tokens_per_s[n, "naive"], 0.01)
    assert "Chunk backend over naive" in capsys.readouterr().out
    assert sleepcore.layers.fast_weight is fast_weight  # the stand-in is gone after the benchmark


def test_bench_train_backends_take_turns_and_only_none_gets_the_stand_in(monkeypatch):
    """One step of each backend per round, so a slow spell of the machine slows all of them alike."""
    seen, timed = [], bench._timed

    def spy(fn, *args):
        seen.append(sleepcore.layers.fast_weight is free_op)
        return timed(fn, *args)

    monkeypatch.setattr(bench, "_timed", spy)
    s = dataclasses.replace(TrainSettings.quick(), passes=(1,), steps=2)
    rows = bench.train_throughput(s, progress=False)
    assert [r["backend"] for r in rows] == ["chunk", "naive", "none"] and all(r["steps"] == 2 for r in rows)
    assert seen == [False, False, True] * (s.warmup + s.steps)
    assert sleepcore.layers.fast_weight is fast_weight


def test_free_op_passes_v_and_the_state_through():
    q, k, v = torch.randn(3, 2, 5, 3, 4)
    g, beta, s0 = torch.randn(2, 5, 3), torch.rand(2, 5, 3), torch.randn(2, 3, 4, 4)
    o, S = free_op(q, k, v, g, beta, rule="delta", initial_state=s0, backend="chunk", chunk_size=64)
    assert o is v and S is s0
    o, S = free_op(q, k, v[..., :2], g, beta, initial_state=None)
    assert S.shape == (2, 3, 4, 2) and not S.any()


def test_ratios_and_table_formatting():
    rows = [{"model": "a", "context": c, "median_ms": m} for c, m in ((1024, 2.0), (32768, 3.0))]
    assert latency_ratios(rows) == {"a": 1.5}
    assert table(rows, ["model", "context", "median_ms"]).splitlines() == [
        "model  context  median_ms",
        "    a    1,024          2",
        "    a   32,768          3",
    ]


def test_unknown_benchmark_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


# --- bench ops ----------------------------------------------------------------------------------------------------
def test_bench_ops_quick_writes_its_table(tmp_path, capsys):
    assert main(["bench", "ops", "--quick", "--out", str(tmp_path)]) == 0
    columns, rows = read(tmp_path / "ops.csv")
    assert columns == OPS_COLUMNS
    s = OpsSettings.quick()
    grid = [r for r in rows if r["shape"] == "grid"]
    assert [(r["T"], r["rule"], r["backend"], r["pass"]) for r in grid] == [
        (str(T), rule, b, p)
        for T in s.lengths
        for rule in ("hebbian", "delta")
        for b in ("naive", "chunk")
        for p in PASSES
    ]
    assert {(r["B"], r["H"], r["K"], r["V"], r["dtype"]) for r in grid} == {("2", "2", "32", "32", "float32")}
    for r in rows:
        ms, nbytes, gbps = float(r["median_ms"]), int(r["min_bytes"]), float(r["GBps"])
        assert ms > 0 and gbps == pytest.approx(nbytes / ms / 1e6, rel=0.02, abs=0.01)
        assert float(r["pct_copy"]) == pytest.approx(100 * gbps / float(r["copy_GBps"]), rel=0.02, abs=0.1)
        assert float(r["rel_err"]) < 1e-4  # every backend computes the op that chunk computes
    # the shipped checkpoints' fast-weight shapes (batch size, sleep window, fw heads, head size), each benched once
    shipped, names = shipped_shapes()
    key = ("B", "T", "H", "K", "V")
    benched = {tuple(int(r[c]) for c in key) for r in rows if r["shape"] == "shipped"}
    assert benched == {(x.B, x.T, x.H, x.K, x.V) for x in shipped}
    if "rule110-mini-n2" in available():  # attention-only models have no fast-weight layer to bench
        assert "rule110-mini-n2" in names[(64, 17, 2, 32, 32)]
        assert not any("attn-only" in n or "full-attention" in n for ns in names.values() for n in ns)
    out = capsys.readouterr().out
    assert "copy bandwidth" in out and "torch " in out and "triton skipped on the CPU" in out


def test_min_bytes_by_hand():
    # B=2, T=64, H=2, K=V=32 in bf16 (2 bytes); the state is fp32
    q = k = v = o = 2 * 2 * 64 * 2 * 32  # 16,384 bytes each
    g = beta = 2 * 2 * 64 * 2  # 512 bytes each
    state = 4 * 2 * 2 * 32 * 32  # 16,384 bytes
    inputs = q + k + v + g + beta
    assert min_bytes(2, 64, 2, 32, 32, 2, backward=False) == inputs + state + o + state == 99_328
    # backward: inputs and h0 read again, do and dS read, dq dk dv dg dbeta dh0 written
    assert min_bytes(2, 64, 2, 32, 32, 2, backward=True) == 99_328 + 2 * (inputs + state) + o + state
    assert min_bytes(2, 64, 2, 32, 32, 2, backward=False, gates=False, state=False) == q + k + v + o
    # one chunk of 64: q kᵀ 2·64²·32, attn·u 2·64²·32, q·S and kᵀ·u 2·64·32² each; per (b, h)
    assert chunk_flops(2, 64, 2, 32, 32, "hebbian") == 4 * (2 * 64 * 64 * 32 * 2 + 4 * 64 * 32 * 32)


def _fake_fla(monkeypatch):
    """flash-linear-attention's two entry points with their documented semantics, built on the naive op."""
    import types

    from sleepcore.ops import fast_weight

    def chunk_simple_gla(*, q, k, v, g, scale, initial_state, output_final_state):
        beta = torch.ones_like(g)  # simple GLA writes k vᵀ with no write strength
        return fast_weight(q, k, v, g, beta, rule="hebbian", scale=scale, initial_state=initial_state, backend="naive")

    def chunk_gated_delta_rule(*, q, k, v, g, beta, scale, initial_state, output_final_state):
        return fast_weight(q, k, v, g, beta, rule="delta", scale=scale, initial_state=initial_state, backend="naive")

    mods = {n: types.ModuleType(n) for n in ("fla", "fla.ops", "fla.ops.simple_gla", "fla.ops.gated_delta_rule")}
    mods["fla.ops.simple_gla"].chunk_simple_gla = chunk_simple_gla
    mods["fla.ops.gated_delta_rule"].chunk_gated_delta_rule = chunk_gated_delta_rule
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


TINY = OpsSettings(batch=1, heads=2, lengths=(20,), head_dim=16, shipped=False, backends=("chunk", "fla"), repeats=1)


def test_fla_adapter_maps_our_arguments_to_theirs(monkeypatch):
    _fake_fla(monkeypatch)
    rows, notes, _, _ = ops_bench(TINY, "cpu", progress=False)
    fla = [r for r in rows if r["backend"] == "fla"]
    assert [(r["rule"], r["pass"]) for r in fla] == [(rule, p) for rule in ("hebbian", "delta") for p in PASSES]
    assert all(r["rel_err"] < 1e-5 for r in fla) and notes == []


def test_fla_absent_skips_its_rows_with_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "fla", None)  # import fla raises ImportError
    rows, notes, _, _ = ops_bench(TINY, "cpu", progress=False)
    assert {r["backend"] for r in rows} == {"chunk"} and len(rows) == 2 * len(PASSES)
    assert len(notes) == 1 and "flash-linear-attention is not importable" in notes[0]


def test_a_failing_backend_is_a_note_and_every_shape_is_handed_on_as_it_ends(monkeypatch):
    """A backend that raises anything (a kernel too big for the GPU, a compile error) costs its rows, not the run's;
    on_shape gets the rows so far after each shape, so `bench ops` cut short keeps its CSV."""
    _fake_fla(monkeypatch)

    def broken(*, q, **kwargs):
        raise KeyError("BV")

    monkeypatch.setattr(sys.modules["fla.ops.gated_delta_rule"], "chunk_gated_delta_rule", broken)
    handed_on = []
    s = dataclasses.replace(TINY, lengths=(20, 40))
    rows, notes, _, _ = ops_bench(s, "cpu", progress=False, on_shape=lambda done: handed_on.append(len(done)))
    per_shape = 3 * len(PASSES)  # chunk for both rules, fla for hebbian
    assert handed_on == [per_shape, 2 * per_shape] and len(rows) == 2 * per_shape
    assert notes == [f"fla delta at B=1 T={T} H=2 K=16 failed: KeyError: 'BV'" for T in (20, 40)]
    assert {r["triton_configs"] for r in rows} == {""}  # no triton row on the CPU


def test_device_check_script_is_valid_and_names_what_exists():
    """scripts/device_check.sh runs only on a lent GPU machine; here: its shell parses, its embedded Python
    compiles, and every test file and preset it names exists."""
    import re
    import subprocess
    from pathlib import Path

    from sleepcore.presets import PRESETS

    script = Path(__file__).parents[1] / "scripts" / "device_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for path in re.findall(r"tests/\w+\.py", text):
        assert (script.parents[1] / path).is_file(), path
    embedded = text.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    compile(embedded, "device_check.sh:model", "exec")
    for preset in re.findall(r'build\("([\w-]+)"', embedded):
        assert preset in PRESETS


def test_bench_tables_and_figure_are_written_atomically(tmp_path, monkeypatch):
    """A write that fails half-way leaves the previous file as it was and no temporary file behind."""
    import plotly.graph_objects as go

    path = tmp_path / "latency.csv"
    path.write_text("the previous table\n")
    with pytest.raises(ValueError, match="fields not in fieldnames"):
        bench.write_csv(path, [{"model": "m"}, {"model": "m", "stray": 1}], ["model"])  # fails on the second row
    assert path.read_text() == "the previous table\n" and sorted(tmp_path.iterdir()) == [path]
    bench.write_csv(path, [{"model": "m", "context": 64}], ["model", "context"])
    assert read(path) == (["model", "context"], [{"model": "m", "context": "64"}])

    html = tmp_path / "latency.html"
    html.write_text("the previous figure")

    def half_written(fig, file, **kwargs):
        Path(file).write_text("<html>half")
        raise OSError("disk full")

    monkeypatch.setattr(go.Figure, "write_html", half_written)
    with pytest.raises(OSError, match="disk full"):
        bench.latency_figure([{"model": "m", "context": 64, "median_ms": 1.0}], html)
    assert html.read_text() == "the previous figure" and sorted(tmp_path.iterdir()) == [path, html]


# --- bench kernels ------------------------------------------------------------------------------------------------
def test_bench_kernels_compiles_every_kernel_for_a_gpu_here(tmp_path):
    """Every kernel of the op compiled for sm_90 on this CPU machine (Triton's own ptxas): each launch's shared
    memory against the H100's limit, its registers and its spills, as the launchers type the arguments. In a fresh
    process: the kernels' modules pick the interpreter's configs where TRITON_INTERPRET is set on import."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "SLEEPCORE_TRITON_AUTOTUNE")}
    argv = [sys.executable, "-m", "sleepcore.cli", "bench", "kernels", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "7 of 7 launches fit sm_90's shared memory" in done.stdout
    columns, rows = read(tmp_path / "kernels.csv")
    assert columns == list(kernel_resources.COLUMNS)
    assert [r["kernel"] for r in rows] == list(kernel_resources.KERNELS)
    for r in rows:
        shared, regs = int(r["shared_bytes"]), int(r["registers"])
        assert r["fits"] == str(shared <= int(r["shared_limit"])) == "True"
        assert 0 < shared and 0 < regs <= 255 and int(r["spill_bytes"]) >= 0, r
        # the fixed config of the chunked kernels, Triton's default launch for the recurrent ones
        assert (r["warps"], r["stages"]) == (("4", "3") if r["kernel"].startswith("recurrent") else ("8", "1"))


def test_bench_kernels_jobs_follow_the_launchers_and_refuse_what_they_do_not_know():
    fixed = kernel_resources.jobs("delta", "float32", 64, 128)
    by = {j.kernel: j for j in fixed}
    assert by["state"].BV == 32 and by["grad"].BV == 64  # a fixed V-block of 32, the gradient kernel's own 64
    assert dict(by["grad"].pointers)["dq"] == "fp32"  # two V-blocks of the gradient kernel: fp32 partials
    assert dict(by["prep"].pointers)["xs"] == "fp32" and dict(by["output"].pointers)["u"] == "fp32"
    hebbian = {j.kernel: j for j in kernel_resources.jobs("hebbian", "bfloat16", 64, 64)}
    assert dict(hebbian["prep"].pointers)["w"] is None and dict(hebbian["output"].pointers)["u"] == "bf16"
    tuned = kernel_resources.jobs("delta", "bfloat16", 64, 64, ("state",), all_configs=True)
    assert len(tuned) == 12 and {j.BV for j in tuned} == {16, 32, 64}
    for bad, message in [
        (dict(rule="oja"), "unknown rule 'oja'"),
        (dict(dtype="float64"), "unknown dtype 'float64'"),
        (dict(kernels=("fused",)), r"unknown kernel\(s\) \['fused'\]"),
    ]:
        args = dict(rule="delta", dtype="float32", K=16, V=16) | bad
        with pytest.raises(ValueError, match=message):
            kernel_resources.jobs(**args)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["kernels", "--target", "sm_99"], "unknown --target 'sm_99'; valid: sm_90, sm_80, sm_89, sm_86"),
        (["kernels", "--heads", "64"], "--heads '64': each head size is KxV"),
        (["kernels", "--heads", "512x64"], "K in 1..256"),
        (["ops", "--target", "sm_80"], "--target: settings of `bench kernels`, not of `bench ops`"),
        (["train", "--target", "sm_90", "--all-configs"], "--target and --all-configs: settings of `bench kernels`"),
    ],
)
def test_bench_kernels_settings_are_checked(argv, message, tmp_path, capsys):
    assert main(["bench", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
