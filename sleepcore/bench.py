"""Benchmarks: wake latency against context length, the cost of sleep, and training throughput.

`sleepcore bench latency` decodes one token at a time (sleepcore/decode.py) at context lengths 1k … 32k for
  (a) a sleep model under hard eviction: its cache is one window of KV plus the fixed-size fast-weight state, and
  (b) a full-attention transformer of the same width and depth, whose KV cache holds the whole context;
  and times one sleep (N passes over a window) for N = 1, 2, 4, 8.
`sleepcore bench train` measures training tokens/s on the CPU for the mini presets, chunk against naive backend,
  and with the op replaced by a stand-in that costs nothing (`none`): the most any backend could speed a step up.

Timings are medians of per-call wall-clock times (`*_ms`) and of this process's CPU time (`cpu_ms`, all its
threads): the wall clock includes waiting for a core on a busy machine; CPU time does not.
"""

from __future__ import annotations

import csv
import dataclasses
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from sleepcore.checkpoint import atomic_write
from sleepcore.config import ModelConfig, SleepConfig
from sleepcore.data import collate
from sleepcore.decode import Decoder
from sleepcore.model import SleepModel
from sleepcore.presets import build
from sleepcore.tasks import get_task
from sleepcore.train import batch_at, loss_and_accuracy, make_optimizer

LATENCY_COLUMNS = "model context median_ms p90_ms cpu_ms tokens kv_bytes state_bytes cache_bytes rss_mb".split()
SLEEP_COLUMNS = ["passes", "window", "sleep_ms", "cpu_ms", "per_token_ms"]
TRAIN_COLUMNS = "preset passes backend batch_size seq_len steps step_ms step_cpu_ms tokens_per_s".split()
SPEEDUP_COLUMNS = "preset passes chunk_tokens_per_s naive_tokens_per_s speedup speedup_cpu bound bound_cpu".split()


@dataclass(frozen=True)
class LatencySettings:
    contexts: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768)
    tokens: int = 200  # timed decode steps per context length
    warmup: int = 20
    d_model: int = 256
    heads: int = 4  # attention and fast-weight heads; head size d_model / heads = 64
    window: int = 64  # L of the sleep model
    vocab: int = 8192  # a 32k vocabulary's readout would dominate both models' step alike
    sleep_passes: tuple[int, ...] = (1, 2, 4, 8)
    wake_loop: int = 4  # N of the wake-loop control (its N passes per token read); 0 leaves it out
    sleep_repeats: int = 5
    seed: int = 0

    @classmethod
    def quick(cls) -> LatencySettings:
        return cls(contexts=(64, 128), tokens=6, warmup=2, d_model=32, heads=2, window=16, vocab=64, sleep_repeats=1)


@dataclass(frozen=True)
class TrainSettings:
    presets: tuple[str, ...] = ("rule110-mini", "depo-mini", "gsm-mini")
    passes: tuple[int, ...] = (1, 2, 4)
    backends: tuple[str, ...] = ("chunk", "naive", "none")  # none: the op costs nothing (free_op), a bound
    steps: int = 5  # timed optimizer steps per backend, after the warm-up; backends take turns step by step
    warmup: int = 1
    batch_size: int | None = None  # None: the preset's

    @classmethod
    def quick(cls) -> TrainSettings:
        return cls(presets=("tiny",), passes=(1, 2), steps=1, warmup=1, batch_size=4)


# --- latency ------------------------------------------------------------------------------------------------
def latency_models(s: LatencySettings) -> dict[str, SleepModel]:
    """{name: model}: the sleep model (attn, fw, attn, fw under hard eviction), the wake-loop control of the same
    shape with N = s.wake_loop (if > 0), and the transformer (4 attention layers, no eviction)."""
    torch.manual_seed(s.seed)
    common = dict(vocab_size=s.vocab, d_model=s.d_model, attn_heads=s.heads, fw_heads=s.heads)
    head = s.d_model // s.heads
    hybrid = ModelConfig(**common, layers="attn,fw,attn,fw", head_dim=head, conv_size=4, max_positions=s.window)
    models = {f"sleep (L={s.window})": SleepModel(hybrid, SleepConfig(passes=1, window=s.window))}
    if s.wake_loop:
        wake = SleepConfig(passes=s.wake_loop, window=s.window, loop="wake")
        models[f"wake loop (L={s.window}, N={s.wake_loop})"] = SleepModel(hybrid, wake)
    longest = max(s.contexts) + s.warmup + s.tokens
    models["full attention"] = SleepModel(
        ModelConfig(**common, layers="attn,attn,attn,attn", head_dim=head, max_positions=longest),
        SleepConfig(passes=1, window=None),
    )
    return {name: m.eval() for name, m in models.items()}


def fill_context(dec: Decoder, context: int, gen: torch.Generator, room: int = 0) -> None:
    """Bring a decoder to about `context` tokens read without decoding them one by one.

    Sleep model: evict the window under way, then read whole context windows (prefill; the state is what carries
    the context) until `context` is reached to within a window; a decoder that has read some already reads only
    what it lacks. Transformer (a fresh decoder): random keys and values of the right shape in every KV cache,
    since a decode step's cost depends only on its size; room more positions are reserved, so that the timed
    steps never grow the cache. The sleep model is built with N = 1: its wake step is the same for every N.
    """
    if dec.window is not None:
        if dec.tokens:
            dec.evict(sleep=True)
        missing = max(context - dec.seen, 0) // dec.window * dec.window
        dec.read_context(torch.randint(0, dec.model.cfg.vocab_size, (dec.B, missing), generator=gen))
        return
    tokens = torch.randint(0, dec.model.cfg.vocab_size, (dec.B, context), generator=gen)
    for cache in dec.kv:
        if cache is not None:
            cache.reserve(context + room)
            cache.k[:, :, :context] = torch.randn(cache.k[:, :, :context].shape, generator=gen)
            cache.v[:, :, :context] = torch.randn(cache.v[:, :, :context].shape, generator=gen)
            cache.length = context
    dec.tokens = list(tokens.unbind(1))  # the next token's position is `context`
    dec.seen = context


def time_decoding(dec: Decoder, s: LatencySettings, gen: torch.Generator) -> tuple[list[float], list[float], int, int]:
    """Per-token wake latencies in ms over s.tokens steps after s.warmup, wall and CPU; peak KV bytes and peak
    bytes of the fast-weight states and conv buffers meanwhile.

    An eviction (and the sleep in it) happens between tokens and is timed apart, in `time_sleep`.
    """
    times, cpu, kv_peak, state_peak = [], [], 0, 0
    for i in range(s.warmup + s.tokens):
        if dec.full:
            dec.evict(sleep=True)
        token = torch.randint(0, dec.model.cfg.vocab_size, (dec.B,), generator=gen)
        wall, used = _timed(dec.step, token)
        if i >= s.warmup:
            times.append(wall)
            cpu.append(used)
        kv_peak = max(kv_peak, dec.kv_bytes())
        state_peak = max(state_peak, dec.state_bytes())
    return times, cpu, kv_peak, state_peak


def time_sleep(model: SleepModel, passes: int, s: LatencySettings, gen: torch.Generator) -> tuple[float, float]:
    """Median (wall, CPU) ms to sleep on one window of L tokens (N passes), from a state holding a window."""
    dec = Decoder(model, 1, passes)
    window = torch.randint(0, model.cfg.vocab_size, (1, s.window), generator=gen)
    state = dec.sleep_on(window, dec.state)
    times = [_timed(dec.sleep_on, window, state) for _ in range(1 + s.sleep_repeats)][1:]  # the first warms up
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def latency(s: LatencySettings, progress: bool = True) -> tuple[list[dict], list[dict]]:
    """(per-token latency rows, one per model and context; sleep-cost rows, one per N)."""
    gen = torch.Generator().manual_seed(s.seed)
    names = latency_models(s)
    sleeper = names[f"sleep (L={s.window})"]
    rows = []
    for name, model in names.items():
        dec = Decoder(model, 1)
        for context in s.contexts:
            if model.sleep.window is None:  # the transformer: a fresh cache of each length
                dec = Decoder(model, 1)
            fill_context(dec, context, gen, room=s.warmup + s.tokens)
            times, cpu, kv, state = time_decoding(dec, s, gen)
            rows.append(
                {
                    "model": name,
                    "context": context,
                    "median_ms": round(statistics.median(times), 4),
                    "p90_ms": round(_quantile(times, 0.9), 4),
                    "cpu_ms": round(statistics.median(cpu), 4),
                    "tokens": len(times),
                    "kv_bytes": kv,
                    "state_bytes": state,
                    "cache_bytes": kv + state,
                    "rss_mb": round(_rss_mb(), 1),
                }
            )
            if progress:
                width = max(map(len, names))
                print(f"  {name:<{width}} context {context:>6}: {rows[-1]['median_ms']:.3f} ms/token", flush=True)
    sleeps = []
    for n in s.sleep_passes:
        ms, cpu = time_sleep(sleeper, n, s, gen)
        per_token = round(ms / s.window, 4)  # the sleep's wall time spread over the window's tokens
        sleeps.append({"passes": n, "window": s.window, "sleep_ms": round(ms, 3), "cpu_ms": round(cpu, 3)})
        sleeps[-1]["per_token_ms"] = per_token
    return rows, sleeps


def latency_ratios(rows: list[dict], column: str = "median_ms") -> dict[str, float]:
    """latency(longest context) / latency(shortest context), per model, from one column (wall or CPU)."""
    out = {}
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == name), key=lambda r: r["context"])
        out[name] = mine[-1][column] / mine[0][column]
    return out


def latency_figure(rows: list[dict], path: Path) -> bool:
    """Median wake latency against context length, one line per model, as a standalone HTML file (if plotly)."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return False
    fig = go.Figure()
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        fig.add_scatter(
            x=[r["context"] for r in mine], y=[r["median_ms"] for r in mine], mode="lines+markers", name=name
        )
    fig.update_layout(
        title="Per-token wake latency against context length",
        xaxis=dict(title="context length (tokens)", type="log"),
        yaxis=dict(title="median latency per token (ms)", type="log"),
        template="plotly_white",
    )
    atomic_write(path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True))
    return True


# --- training throughput ------------------------------------------------------------------------------------
def train_throughput(s: TrainSettings, progress: bool = True) -> list[dict]:
    """Training tokens/s (forward, backward through sleep, AdamW step) per preset, N and backend.

    The backends of one preset and N are timed in turn, one step each per round, so a slow spell of a shared
    machine slows them alike and their ratios hold; each has its own model, optimizer and batches.
    """
    rows = []
    for preset in s.presets:
        for n in s.passes:
            rows += _train_rows(preset, n, s)
            if progress:
                print(
                    f"  {preset} N={n}: "
                    + ", ".join(f"{r['backend']} {r['tokens_per_s']:,.0f}" for r in rows[-len(s.backends) :])
                    + " tokens/s",
                    flush=True,
                )
    return rows


def free_op(q, k, v, g, beta, *, initial_state=None, **_):
    """A stand-in for the fast-weight op that costs nothing: o = v, the state passed through (zeros without one).

    No real op is cheaper: it does no arithmetic, and no gradient reaches q, k, g or beta, so their projections'
    backward is skipped too. A step with it is faster than with any backend of the op, so naive / that step bounds
    the speedup any backend can give the whole step (Amdahl), whatever it does.
    """
    B, _, H, K = k.shape
    state = initial_state if initial_state is not None else v.new_zeros(B, H, K, v.shape[-1])
    return v, state


@contextmanager
def _op_of(backend: str):
    """The fast-weight op the model layers call while timing `backend`: free_op for none, else the real one."""
    import sleepcore.layers as layers

    real = layers.fast_weight
    layers.fast_weight = free_op if backend == "none" else real
    try:
        yield
    finally:
        layers.fast_weight = real


def _train_step(model_cfg, sleep_cfg, cfg, backend: str):
    """A training step of a fresh model and optimizer for `backend` (none: chunk's model), as a function of a batch."""
    model_cfg = dataclasses.replace(model_cfg, backend="chunk" if backend == "none" else backend)
    torch.manual_seed(cfg.seed)
    model = SleepModel(model_cfg, sleep_cfg).train()
    opt = make_optimizer(model, cfg)

    def train_step(batch: dict) -> None:
        loss, _ = loss_and_accuracy(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()

    return train_step


def _train_rows(preset: str, passes: int, s: TrainSettings) -> list[dict]:
    model_cfg, sleep_cfg, task_cfg, cfg = build(preset, passes, batch_size=s.batch_size)
    steps = {b: _train_step(model_cfg, sleep_cfg, cfg, b) for b in s.backends}
    task = get_task(task_cfg.name, **task_cfg.params)
    batches = [collate(batch_at(step, cfg, task)) for step in range(s.warmup + s.steps)]  # the same for every backend
    times: dict[str, list[tuple[float, float]]] = {b: [] for b in s.backends}
    for batch in batches:
        for backend, train_step in steps.items():
            with _op_of(backend):
                times[backend].append(_timed(train_step, batch))
    B, T = batches[0]["tokens"].shape
    rows = []
    for backend in s.backends:
        kept = times[backend][s.warmup :]
        step_ms, cpu_ms = statistics.median(t[0] for t in kept), statistics.median(t[1] for t in kept)
        rows.append(
            {
                "preset": preset,
                "passes": passes,
                "backend": backend,
                "batch_size": B,
                "seq_len": T,
                "steps": s.steps,
                "step_ms": round(step_ms, 2),
                "step_cpu_ms": round(cpu_ms, 2),
                "tokens_per_s": round(1e3 * B * T / step_ms, 1),
            }
        )
    return rows


def speedups(rows: list[dict]) -> list[dict]:
    """chunk over naive tokens/s, per preset and N, by wall time (speedup) and by CPU time (speedup_cpu); where the
    free-op rows were measured, the most any backend could give over naive (bound, bound_cpu), else empty."""
    by = {(r["preset"], r["passes"], r["backend"]): r for r in rows}
    out = []
    for preset, n in dict.fromkeys((r["preset"], r["passes"]) for r in rows):
        chunk, naive, free = (by.get((preset, n, b)) for b in ("chunk", "naive", "none"))
        if chunk and naive:
            out.append(
                {
                    "preset": preset,
                    "passes": n,
                    "chunk_tokens_per_s": chunk["tokens_per_s"],
                    "naive_tokens_per_s": naive["tokens_per_s"],
                    "speedup": round(chunk["tokens_per_s"] / naive["tokens_per_s"], 2),
                    "speedup_cpu": round(naive["step_cpu_ms"] / chunk["step_cpu_ms"], 2),
                    "bound": round(free["tokens_per_s"] / naive["tokens_per_s"], 2) if free else "",
                    "bound_cpu": round(naive["step_cpu_ms"] / free["step_cpu_ms"], 2) if free else "",
                }
            )
    return out


# --- the command ------------------------------------------------------------------------------------------------
def run(which: str, out: Path, quick: bool = False, threads: int = 1) -> int:
    """`sleepcore bench latency|train|ops|recorder`: run, print the tables, write CSVs (and latency.html) into out."""
    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    note = f"{torch.get_num_threads()} thread(s); timings depend on the machine and its load"
    if which == "latency":
        rows, sleeps = latency(LatencySettings.quick() if quick else LatencySettings())
        write_csv(out / "latency.csv", rows, LATENCY_COLUMNS)
        write_csv(out / "sleep.csv", sleeps, SLEEP_COLUMNS)
        print(f"\nPer-token wake latency ({note})\n" + table(rows, LATENCY_COLUMNS))
        print("\nSleep cost per window\n" + table(sleeps, SLEEP_COLUMNS))
        cpu = latency_ratios(rows, "cpu_ms")
        for name, ratio in latency_ratios(rows).items():
            print(
                f"latency({rows[-1]['context']}) / latency({rows[0]['context']}) for {name}: "
                f"{ratio:.2f} (wall), {cpu[name]:.2f} (CPU)"
            )
        if latency_figure(rows, out / "latency.html"):
            print(f"figure: {out / 'latency.html'}")
    elif which == "train":
        rows = train_throughput(TrainSettings.quick() if quick else TrainSettings())
        write_csv(out / "train.csv", rows, TRAIN_COLUMNS)
        write_csv(out / "train_speedup.csv", speedups(rows), SPEEDUP_COLUMNS)
        print(f"\nTraining throughput ({note})\n" + table(rows, TRAIN_COLUMNS))
        print("\nChunk backend over naive\n" + table(speedups(rows), SPEEDUP_COLUMNS))
        print(
            "bound: naive over the step with the op replaced by one that costs nothing (backend none: o = v, no\n"
            "gradient into q, k, g, beta): no backend of the op can speed the whole step up by more (Amdahl)"
        )
    elif which == "ops":
        from sleepcore.bench_ops import run_ops

        run_ops(out, quick)
    elif which == "recorder":
        from sleepcore import bench_recorder as br

        rows = br.recorder_bench(**(br.quick_settings() if quick else {}))
        write_csv(out / "recorder.csv", rows, br.COLUMNS)
        print(f"\nRecord points with recording off, per training step ({note})\n" + table(rows, br.COLUMNS))
        print(
            "null_overhead_pct = visits × visit_ns / step_ms, a bound on what the null recorder adds to a step;\n"
            "recording_overhead_pct: the step with every point recorded (a trace's cost), against recording off"
        )
    else:
        raise ValueError(f"unknown benchmark {which!r}; valid: latency, train, ops, recorder")
    print(f"CSV written to {out}/")
    return 0


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Rows as a CSV table with these columns, written atomically."""

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(Path(path), write)


def table(rows: list[dict], columns: list[str]) -> str:
    """Rows as a plain fixed-width text table."""
    cells = [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _timed(fn, *args) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) of one call fn(*args)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return 1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)


def _quantile(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))]


def _rss_mb() -> float:
    """This process's resident memory now, in MB (NaN where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
