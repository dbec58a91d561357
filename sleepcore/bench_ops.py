"""`sleepcore bench ops`: the fast-weight op alone, per backend and shape — time, memory traffic and FLOPs.

For each shape (B = 8, H = 8, T in 512 / 2048 / 8192, K = V = 64, and the shipped models' shapes: their batch
size, fast-weight heads and head size, and T = their sleep window, the length of one call of the op), each rule
and each backend, it times a forward (under no_grad) and a forward + backward (torch.autograd.grad of o and the
final state into q, k, v, g, beta and the initial state), and reports:
  median_ms  the median of triton.testing.do_bench on CUDA (which flushes the L2 cache between calls), of
             time.perf_counter around repeated calls on the CPU;
  min_bytes  the least memory traffic the pass can make (`min_bytes`): inputs read once, outputs written once,
             the fp32 state read and written; for fwd+bwd also the inputs read again, the incoming gradients of
             o and the final state read, and every input's gradient written;
  GBps       min_bytes / median time, and pct_copy, that as a percentage of a measured device-to-device
             .copy_() of a large tensor on the same device (its GB/s, counting read + write, heads the table);
  gflop      the FLOPs of the chunked algorithm (`chunk_flops`; matrix products and triangular solves, elementwise
             work ignored), a common yardstick for every backend whatever it computes; the backward is counted as
             twice the forward. tflops = gflop / time;
  rel_err    max |x − x_ref| / max |x_ref| over o and the final state against the PyTorch chunk backend on the
             same inputs (0 for chunk itself): a check that each backend, and the flash-linear-attention adapter
             above all, computes the same op.
Backends on CUDA: the op's own (triton, chunk), flash-linear-attention's chunk_simple_gla (hebbian) and
chunk_gated_delta_rule (delta) where `fla` imports, and causal SDPA at the same B, H, T, K as a reference point
(rule `softmax`). On the CPU: naive and chunk (triton runs there only under its interpreter, far too slow to time).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sleepcore.bench import table, write_csv
from sleepcore.checkpoint import CheckpointError, available, configs_from, read_info
from sleepcore.ops import BACKENDS, fast_weight

OPS_COLUMNS = (
    "shape B T H K V dtype rule backend pass median_ms min_bytes GBps pct_copy gflop tflops rel_err device copy_GBps "
    "triton_configs"
).split()
TABLE_COLUMNS = [c for c in OPS_COLUMNS if c not in ("device", "copy_GBps", "triton_configs")]
PASSES = ("fwd", "fwd+bwd")
CPU_BACKENDS = ("naive", "chunk")
STATE_BYTES = 4  # the state is fp32 whatever the inputs' dtype


@dataclass(frozen=True)
class OpsSettings:
    batch: int = 8
    heads: int = 8
    lengths: tuple[int, ...] = (512, 2048, 8192)
    head_dim: int = 64  # K = V
    shipped: bool = True  # add the shapes of the fast-weight layers of the checkpoints under checkpoints/
    rules: tuple[str, ...] = ("hebbian", "delta")
    backends: tuple[str, ...] | None = None  # None: gpu_backends() on CUDA, CPU_BACKENDS on the CPU
    dtype: str | None = None  # None: bfloat16 on CUDA, float32 on the CPU
    chunk_size: int = 64  # of the chunk backend, and of the FLOP count
    repeats: int = 5  # timed calls per row on the CPU (median); CUDA uses do_bench's own count
    warmup: int = 1
    bench_ms: tuple[int, int] = (25, 100)  # do_bench (warmup, rep) in ms
    copy_mib: int | None = None  # size of the bandwidth-reference copy; None: 512 MiB on CUDA, 64 MiB on the CPU
    seed: int = 0

    @classmethod
    def quick(cls) -> OpsSettings:
        return cls(batch=2, heads=2, lengths=(64, 256), head_dim=32, repeats=3, bench_ms=(5, 20), copy_mib=16)


@dataclass(frozen=True)
class Shape:
    name: str  # "grid", or "shipped" for the checkpoints' shapes
    B: int
    T: int
    H: int
    K: int
    V: int


class Unavailable(Exception):
    """A backend that cannot run here (not installed, or not on this device): its rows are skipped with a note."""


# --- what a pass must move and compute ------------------------------------------------------------------------
def min_bytes(
    B: int, T: int, H: int, K: int, V: int, elem: int, backward: bool, gates: bool = True, state: bool = True
) -> int:
    """Least bytes a forward (or forward + backward) must move to and from memory.

    inputs: q, k [B, T, H, K], v [B, T, H, V], and g, beta [B, T, H] (if gates), elem bytes each; output: o
    [B, T, H, V]; state: one fp32 [B, H, K, V] (if state). Forward: read the inputs and the initial state, write o
    and the final state. Backward: read the inputs and the initial state again, read the gradients of o and of the
    final state, write the gradients of the inputs and of the initial state. SDPA is gates = state = False.
    """
    inputs = elem * B * T * H * (2 * K + V + (2 if gates else 0))
    output = elem * B * T * H * V
    state_bytes = STATE_BYTES * B * H * K * V if state else 0
    forward = inputs + state_bytes + output + state_bytes
    if not backward:
        return forward
    return forward + (inputs + state_bytes) + (output + state_bytes) + (inputs + state_bytes)


def chunk_flops(B: int, T: int, H: int, K: int, V: int, rule: str, chunk: int = 64) -> int:
    """FLOPs of one forward of the chunked algorithm in its leanest form (README.md, "The chunked form"): per chunk
    of C tokens, hebbian: q kᵀ (2C²K), attn u (2C²V), q S (2CKV), kᵀ u (2CKV); delta adds k kᵀ (2C²K), two
    unit-triangular solves with V and K right-hand sides (C²(K + V)) and w S (2CKV). chunk.py and the Triton
    kernels form the inverse instead (more FLOPs, which the backward reuses); this count is the common yardstick."""
    C = max(1, min(chunk, T))
    per_chunk = 2 * C * C * K + 2 * C * C * V + 4 * C * K * V
    if rule == "delta":
        per_chunk += 2 * C * C * K + C * C * (K + V) + 2 * C * K * V
    return B * H * math.ceil(T / C) * per_chunk


def attention_flops(B: int, T: int, H: int, K: int, V: int) -> int:
    """FLOPs of causal softmax attention's forward: q kᵀ and p v over the lower triangle, 2·T²/2·(K + V)."""
    return B * H * T * T * (K + V)


# --- shapes, devices, timers ----------------------------------------------------------------------------------
def shipped_shapes() -> tuple[list[Shape], dict[tuple, list[str]]]:
    """The distinct (B, T, H, K, V) of the shipped checkpoints that have fast-weight layers: B = the training batch
    size, T = the sleep window (one call of the op), H = fw_heads, K = V = head_dim. Also {shape: checkpoint names}."""
    found: dict[tuple, list[str]] = {}
    for name in available():
        try:
            model, sleep, _, train = configs_from(read_info(name))
        except CheckpointError:
            continue
        if "fw" not in model.layers.split(",") or not sleep.window:
            continue
        key = (train.batch_size, sleep.window, model.fw_heads, model.head_dim, model.head_dim)
        found.setdefault(key, []).append(name)
    return [Shape("shipped", *key) for key in found], found


def shapes(s: OpsSettings) -> tuple[list[Shape], dict[tuple, list[str]]]:
    grid = [Shape("grid", s.batch, T, s.heads, s.head_dim, s.head_dim) for T in s.lengths]
    shipped, names = shipped_shapes() if s.shipped else ([], {})
    seen = {(x.B, x.T, x.H, x.K, x.V) for x in grid}
    return grid + [x for x in shipped if (x.B, x.T, x.H, x.K, x.V) not in seen], names


def gpu_backends() -> tuple[str, ...]:
    """Every backend of the op but naive (a per-token loop, far too slow at these shapes), then fla and sdpa."""
    return (*(b for b in BACKENDS if b not in ("auto", "naive")), "fla", "sdpa")


def median_ms(fn, device: torch.device, s: OpsSettings) -> float:
    """Median ms of fn(): triton.testing.do_bench on CUDA (CUDA events, L2 flushed), perf_counter on the CPU."""
    if device.type == "cuda":
        try:
            from triton.testing import do_bench
        except ImportError:
            do_bench = None
        if do_bench is not None:
            return float(do_bench(fn, warmup=s.bench_ms[0], rep=s.bench_ms[1], return_mode="median"))
    for _ in range(s.warmup):
        fn()
    times = []
    for _ in range(s.repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def copy_bandwidth(device: torch.device, s: OpsSettings) -> tuple[float, int]:
    """(GB/s of dst.copy_(src) for a large uint8 tensor on device, counting its read and its write; MiB copied)."""
    mib = s.copy_mib or (512 if device.type == "cuda" else 64)
    src = torch.ones(mib << 20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, s)
    return 2 * src.numel() / (ms * 1e-3) / 1e9, mib


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {torch.get_num_threads()} thread(s)"
    except OSError:
        pass
    return f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)"


def triton_version() -> str:
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- the calls being timed ------------------------------------------------------------------------------------
def make_inputs(x: Shape, dtype: torch.dtype, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """Seeded inputs as the model makes them: L2-normalised q, k; beta in (0, 1); g = log of a forget gate near 1;
    a nonzero fp32 initial state. All are leaves that require grad."""
    gen = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(x.B, x.T, x.H, x.K, generator=gen), dim=-1)
    k = F.normalize(torch.randn(x.B, x.T, x.H, x.K, generator=gen), dim=-1)
    v = torch.randn(x.B, x.T, x.H, x.V, generator=gen)
    g = F.logsigmoid(torch.randn(x.B, x.T, x.H, generator=gen) + 4.0)
    beta = torch.sigmoid(torch.randn(x.B, x.T, x.H, generator=gen))
    h0 = 0.1 * torch.randn(x.B, x.H, x.K, x.V, generator=gen)
    out = dict(q=q, k=k, v=v, g=g, beta=beta)
    out = {n: t.to(device=device, dtype=dtype) for n, t in out.items()}
    out["initial_state"] = h0.to(device)
    return {n: t.requires_grad_() for n, t in out.items()}


def fla_op(rule: str):
    """flash-linear-attention's chunked kernel for a rule, as fn(q, k, v, g, beta, scale, initial_state) -> (o, S).

    hebbian: chunk_simple_gla computes S_t = exp(g_t) S_{t-1} + k_t v_tᵀ, o_t = S_tᵀ (scale q_t); our write strength
      beta_t goes into v (beta_t k_t v_tᵀ = k_t (beta_t v_t)ᵀ), an elementwise product that is part of the timed call.
    delta: chunk_gated_delta_rule takes g (log forget gate) and beta [B, T, H] as ours, with the decay applied before
      the delta update, as ours. q, k arrive already L2-normalised, so use_qk_l2norm_in_kernel stays False.
    Both: layout [B, T, H, *], state [B, H, K, V], scale multiplies q. Mapping from their documented signatures,
    keyword arguments only; checked at run time by the rel_err column.
    """
    try:
        if rule == "hebbian":
            from fla.ops.simple_gla import chunk_simple_gla
        else:
            from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    except ImportError as e:
        raise Unavailable(f"flash-linear-attention is not importable ({e}); fla rows skipped") from None

    def hebbian(q, k, v, g, beta, scale, initial_state):
        return chunk_simple_gla(
            q=q,
            k=k,
            v=v * beta[..., None],
            g=g,
            scale=scale,
            initial_state=initial_state,
            output_final_state=True,
        )

    def delta(q, k, v, g, beta, scale, initial_state):
        return chunk_gated_delta_rule(
            q=q, k=k, v=v, g=g, beta=beta, scale=scale, initial_state=initial_state, output_final_state=True
        )

    return hebbian if rule == "hebbian" else delta


def op_call(backend: str, rule: str, x: dict[str, torch.Tensor], chunk_size: int):
    """(fn() -> outputs, the leaves its gradient goes to) for one backend. Raises Unavailable where it cannot run."""
    q, k, v, g, beta, h0 = (x[n] for n in ("q", "k", "v", "g", "beta", "initial_state"))
    scale = q.shape[-1] ** -0.5
    if backend == "sdpa":
        # its own [B, H, T, D] layout, made once outside the timed call, as a model would project into it
        qa, ka, va = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))
        return (lambda: (F.scaled_dot_product_attention(qa, ka, va, is_causal=True),)), [qa, ka, va]
    leaves = [q, k, v, g, beta, h0]
    if backend == "fla":
        fla = fla_op(rule)
        return (lambda: tuple(fla(q, k, v, g, beta, scale, h0))), leaves
    if backend.startswith("triton") and q.device.type != "cuda":
        raise Unavailable("triton skipped on the CPU: under TRITON_INTERPRET it is far too slow to time")
    if backend.startswith("triton"):
        try:
            import triton  # noqa: F401
        except ImportError:
            raise Unavailable("triton is not importable; triton rows skipped") from None

    def call():
        return fast_weight(
            q, k, v, g, beta, rule=rule, scale=scale, initial_state=h0, backend=backend, chunk_size=chunk_size
        )

    return call, leaves


def rel_err(outs: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...]) -> float:
    """max |x − x_ref| / max |x_ref| over the outputs (o, then the final state), in fp32."""
    err = 0.0
    for a, b in zip(outs, ref):
        a, b = a.float(), b.float()
        err = max(err, ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item())
    return err


# --- the benchmark --------------------------------------------------------------------------------------------
def triton_configs() -> str:
    """How the Triton kernels pick their launch configs in this process: "autotuned", or "fixed" (under
    SLEEPCORE_TRITON_AUTOTUNE=0, or in the interpreter); "absent" without triton."""
    try:
        from sleepcore.ops import triton_chunk
    except ImportError:
        return "absent"
    return "autotuned" if triton_chunk.AUTOTUNE else "fixed"


def ops_bench(
    s: OpsSettings, device: torch.device | str | None = None, progress: bool = True, on_shape=None
) -> tuple[list[dict], list[str], float, int]:
    """(rows, notes, copy GB/s, MiB copied). Rows per (shape, rule, backend, pass); notes say what was skipped.
    on_shape(rows so far), where given, is called after each shape: a run cut short keeps what it measured."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, s.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    backends = s.backends or (gpu_backends() if device.type == "cuda" else CPU_BACKENDS)
    copy_gbps, mib = copy_bandwidth(device, s)
    where = dict(device=device_name(device), copy_GBps=round(copy_gbps, 1))
    configs = triton_configs() if "triton" in backends else ""  # fixed for the process: read once
    rows, notes = [], []
    if device.type == "cpu" and s.backends is None:
        notes.append("triton skipped on the CPU: under TRITON_INTERPRET it is far too slow to time")
    for x in shapes(s)[0]:
        inputs = make_inputs(x, dtype, device, s.seed)
        for rule in (*s.rules, "softmax"):
            for backend in [b for b in backends if (b == "sdpa") == (rule == "softmax")]:
                for r in bench_backend(x, rule, backend, inputs, device, s, notes, progress):
                    pct = round(100 * r["GBps"] / copy_gbps, 1)
                    rows.append(r | where | {"pct_copy": pct, "triton_configs": configs if backend == "triton" else ""})
        del inputs
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if on_shape is not None:
            on_shape(rows)
    return rows, notes, copy_gbps, mib


def bench_backend(x: Shape, rule: str, backend: str, inputs: dict, device, s: OpsSettings, notes: list, progress):
    """time_backend's rows, or none and a note where the backend cannot run or fails (the rest still run)."""
    try:
        rows = time_backend(x, rule, backend, inputs, device, s)
    except Unavailable as e:
        if str(e) not in notes:
            notes.append(str(e))
        return []
    except Exception as e:  # noqa: BLE001 - one backend's failure (a kernel too big, a compile error), not the run's
        notes.append(f"{backend} {rule} at B={x.B} T={x.T} H={x.H} K={x.K} failed: {type(e).__name__}: {e}")
        return []
    if progress:
        for r in rows:
            print(f"  {x.name} T={x.T:<5} {rule:<7} {backend:<6} {r['pass']:<7} {r['median_ms']:.3f} ms", flush=True)
    return rows


def time_backend(x: Shape, rule: str, backend: str, inputs: dict, device, s: OpsSettings) -> list[dict]:
    """The fwd and fwd+bwd rows of one backend at one shape and rule."""
    fn, leaves = op_call(backend, rule, inputs, s.chunk_size)
    softmax = rule == "softmax"
    with torch.no_grad():
        outs = fn()
        ref = outs if backend == "chunk" or softmax else op_call("chunk", rule, inputs, s.chunk_size)[0]()
    err = float("nan") if softmax else rel_err(outs, ref)
    gen = torch.Generator().manual_seed(s.seed + 1)
    grads = [torch.randn(t.shape, generator=gen).to(t) for t in outs]

    def forward():
        with torch.no_grad():
            fn()

    def forward_backward():
        torch.autograd.grad(fn(), leaves, grads)

    elem = inputs["q"].element_size()
    if softmax:
        flops = attention_flops(x.B, x.T, x.H, x.K, x.V)
    else:
        flops = chunk_flops(x.B, x.T, x.H, x.K, x.V, rule, s.chunk_size)
    rows = []
    for which, timed in zip(PASSES, (forward, forward_backward)):
        backward = which == "fwd+bwd"
        ms = median_ms(timed, device, s)
        nbytes = min_bytes(x.B, x.T, x.H, x.K, x.V, elem, backward, gates=not softmax, state=not softmax)
        gflop = (3 if backward else 1) * flops / 1e9
        rows.append(
            {
                "shape": x.name,
                "B": x.B,
                "T": x.T,
                "H": x.H,
                "K": x.K,
                "V": x.V,
                "dtype": str(inputs["q"].dtype).removeprefix("torch."),
                "rule": rule,
                "backend": backend,
                "pass": which,
                "median_ms": round(ms, 4),
                "min_bytes": nbytes,
                "GBps": round(nbytes / (ms * 1e-3) / 1e9, 2),
                "gflop": round(gflop, 4),
                "tflops": round(gflop / (ms * 1e-3) / 1e3, 4),
                "rel_err": float(f"{err:.3g}"),
            }
        )
    return rows


def run_ops(out: Path, quick: bool = False) -> None:
    """`sleepcore bench ops`: run, print the table with its device and versions, write ops.csv into out."""
    s = OpsSettings.quick() if quick else OpsSettings()
    csv_path = Path(out) / "ops.csv"
    rows, notes, copy_gbps, mib = ops_bench(s, on_shape=lambda done: write_csv(csv_path, done, OPS_COLUMNS))
    write_csv(csv_path, rows, OPS_COLUMNS)
    device = rows[0]["device"] if rows else "?"
    configs = f" (kernel configs: {triton_configs()})" if torch.cuda.is_available() else ""
    print(
        f"\nFast-weight op on {device}; torch {torch.__version__}, triton {triton_version()}{configs}, "
        f"{datetime.date.today().isoformat()}\ncopy bandwidth (.copy_() of {mib} MiB, "
        f"read + write): {copy_gbps:,.1f} GB/s; pct_copy = GBps / that"
    )
    for (B, T, H, K, V), names in shapes(s)[1].items():
        print(f"shipped shape B={B} T={T} H={H} K={K} V={V}: {', '.join(names)}")
    print(table(rows, TABLE_COLUMNS))
    for note in notes:
        print(f"note: {note}")
