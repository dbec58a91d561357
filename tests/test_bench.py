"""The benchmarks run on tiny settings and write the tables they promise (structure only: speed is not tested)."""

import csv

import pytest

from sleepcore.bench import (
    LATENCY_COLUMNS,
    SLEEP_COLUMNS,
    SPEEDUP_COLUMNS,
    TRAIN_COLUMNS,
    LatencySettings,
    latency_ratios,
    table,
)
from sleepcore.cli import main


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
        (m, c) for m in (f"sleep (L={s.window})", "full attention") for c in s.contexts
    ]
    for r in rows:
        assert float(r["median_ms"]) > 0 and int(r["tokens"]) == s.tokens
        assert int(r["cache_bytes"]) == int(r["kv_bytes"]) + int(r["state_bytes"])
    sleep_rows = [r for r in rows if r["model"].startswith("sleep")]
    full = [r for r in rows if r["model"] == "full attention"]
    # hard eviction: at most one window of KV whatever the context; full attention holds all of it
    assert len({r["kv_bytes"] for r in sleep_rows}) == 1 and int(sleep_rows[0]["state_bytes"]) > 0
    assert int(full[1]["kv_bytes"]) > int(full[0]["kv_bytes"]) > int(sleep_rows[0]["kv_bytes"])
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
        ("tiny", n, b) for n in ("1", "2") for b in ("chunk", "naive")
    ]
    assert all(float(r["tokens_per_s"]) > 0 and r["batch_size"] == "4" for r in rows)
    columns, speed = read(tmp_path / "train_speedup.csv")
    assert columns == SPEEDUP_COLUMNS and [r["passes"] for r in speed] == ["1", "2"]
    for r in speed:
        assert float(r["speedup_cpu"]) > 0 and float(r["speedup"]) == pytest.approx(
            float(r["chunk_tokens_per_s"]) / float(r["naive_tokens_per_s"]), 0.01
        )
    assert "Chunk backend over naive" in capsys.readouterr().out


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
