"""Chunked fast-weight forward in Triton: the chunk-parallel algorithm for long T (math and design in README.md).

The sequence is cut into chunks of CHUNK = 64 tokens. Inside a chunk, with γ the cumulative log gate, Γ = e^γ,
and both rules written as S_t = e^{g_t} S_{t-1} + β_t k_t u_tᵀ (u_t = v_t for hebbian; u_t = v_t − S'_tᵀ k_t, the
written value, for delta), three kernels compute:

1. `_prep_kernel`, grid (B·H, NC), chunk-parallel: γ, and for the delta rule the WY factors w = X (Γ ⊙ k) and
   u0 = X v with X = (I + A)⁻¹, A_tj = β_j e^{γ_t − γ_j} k_t·k_j for j < t, inverted by forward substitution.
2. `_state_kernel`, grid (B·H, NV), the only sequential part: carries the fp32 [K, BV] state from chunk to chunk,
   stores each chunk's start state h, and for the delta rule the written values u = u0 − w S.
3. `_output_kernel`, grid (B·H, NC, NV), chunk-parallel: o = (scale q ⊙ Γ) h_c + (scale q kᵀ ⊙ M ⊙ β) u, with
   M_tj = e^{γ_t − γ_j} for j ≤ t, else 0.

Every exponent is γ_t − γ_j with j ≤ t, or γ_t, or γ_last − γ_j: never positive, so nothing overflows whatever
the gate strength. The chunk-start states h are exactly the recurrent backward's checkpoints, and u its written
values, so triton_fw.py's backward consumes this forward's outputs unchanged.

Only plain pointer arithmetic and tl.dot (no tl.make_block_ptr), so one source runs on Triton 3.6–3.9 and in the
interpreter. On a GPU each kernel is autotuned; in the interpreter (where @triton.autotune fails) it runs with a
fixed config. Layout: q, k [B, T, H, K]; v, o [B, T, H, V]; g, beta [B, T, H]; state [B, H, K, V] fp32.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

CHUNK = 64  # tokens per chunk here, and the recurrent backward's checkpoint stride: one number, as it reads our h
BLOCK = 64  # K and V are walked in blocks of at most this many columns where a whole row is not needed
# Triton picks the interpreter when it is first imported, so this is fixed for the life of the process.
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# On a GPU each kernel is autotuned, unless SLEEPCORE_TRITON_AUTOTUNE=0 is set before this module is imported:
# then it is launched with one fixed config (FIXED_LAUNCH, _fixed_block_v), which compiles each kernel once instead
# of 4–12 times (the GPU test run and a model's first steps). The interpreter cannot autotune: it always runs fixed.
AUTOTUNE = not INTERPRET and os.environ.get("SLEEPCORE_TRITON_AUTOTUNE", "1") != "0"
# 8 warps and 1 stage: compiled for sm_90 (`sleepcore bench kernels --all-configs`), 1 stage never needs more shared
# memory than 2, and 8 warps need fewer registers per thread than 4 in most kernels; the interpreter ignores both
FIXED_LAUNCH = {"num_warps": 8, "num_stages": 1}


def _tuned(configs: list[triton.Config], key: list[str]):
    """@triton.autotune over configs on a GPU; the bare kernel where AUTOTUNE is off (launched with a fixed config)."""

    def wrap(kernel):
        return triton.autotune(configs=configs, key=key)(kernel) if AUTOTUNE else kernel

    return wrap


_WARPS_STAGES = [triton.Config({}, num_warps=w, num_stages=s) for w in (4, 8) for s in (1, 2)]
_STATE_CONFIGS = [
    triton.Config({"BV": bv}, num_warps=w, num_stages=s) for bv in (16, 32, 64) for w in (4, 8) for s in (1, 2)
]
_OUTPUT_CONFIGS = [
    triton.Config({"BV": bv}, num_warps=w, num_stages=s) for bv in (32, 64) for w in (4, 8) for s in (1, 2)
]


@_tuned(_WARPS_STAGES, key=["K", "V", "DELTA"])
@triton.jit
def _prep_kernel(
    k, v, g, beta, gam, w, u0, xs,  # gam [B, T, H] fp32 out; w [B, T, H, K], u0 [B, T, H, V] fp32 out (delta only)
    T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DELTA: tl.constexpr, STORE_X: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """Grid (B·H, NC): one program per chunk of one (batch, head). With STORE_X (delta, for the chunked
    backward) it also stores the chunk's inverse X = (I + A)⁻¹ row by token: xs [B, T, H, BT] fp32."""
    i_bh = tl.program_id(0).to(tl.int64)  # B·H on the grid's first axis, the one without a 65,535 limit
    i_c = tl.program_id(1).to(tl.int64)  # the chunk's first row is int64 (any B·T·H); offsets inside it are small
    i_b, i_h = i_bh // H, i_bh % H
    t0 = i_c * BT
    row0 = (i_b * T + t0) * H + i_h  # row of the chunk's first token in [B, T, H]
    idx = tl.arange(0, BT)
    mask_t = t0 + idx < T
    # padded tokens load g = 0, so γ stays at its last value past the end of the sequence
    gamma = tl.cumsum(tl.load(g + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32), 0)  # [BT]
    tl.store(gam + row0 + idx * H, gamma, mask=mask_t)
    if DELTA:
        b = tl.load(beta + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32)
        A = tl.zeros([BT, BT], dtype=tl.float32)
        for i_k in range(tl.cdiv(K, BK)):
            offs_k = i_k * BK + tl.arange(0, BK)
            tk = idx[:, None] * (H * K) + offs_k[None, :]  # [BT, BK] offsets from the chunk's first row
            mask = mask_t[:, None] & (offs_k < K)[None, :]
            k_c = tl.load(k + row0 * K + tk, mask=mask, other=0.0).to(tl.float32)
            A += tl.dot(k_c, tl.trans(k_c), input_precision=PREC)  # k kᵀ
        strict = idx[:, None] > idx[None, :]
        decay = tl.exp(tl.where(strict, gamma[:, None] - gamma[None, :], 0.0))  # exponents <= 0 where kept
        A = tl.where(strict, A * decay * b[None, :], 0.0)  # A_tj = β_j e^{γ_t − γ_j} k_t·k_j, j < t

        # X = (I + A)⁻¹ by forward substitution on Y = X − I: row i is Y_i = −A_i − Σ_{j<i} A_ij Y_j. Rows
        # from i on still hold −A, whose entries at columns >= i are zero, so summing over all rows is right.
        # Padded rows of A are zero (k = 0 there), so the loop stops at the chunk's last token.
        Y = -A
        for i in range(1, tl.minimum(BT, T - t0)):
            is_row = (idx == i)[:, None]
            a = tl.sum(tl.where(is_row, Y, 0.0), 0)  # −A_i  [BT]
            a += tl.sum(a[:, None] * Y, 0)
            Y = tl.where(is_row, a[None, :], Y)
        X = Y + (idx[:, None] == idx[None, :]).to(tl.float32)
        if STORE_X:
            tl.store(xs + row0 * BT + idx[:, None] * (H * BT) + idx[None, :], X, mask=mask_t[:, None])

        Gamma = tl.exp(gamma)  # [BT], <= 1
        for i_k in range(tl.cdiv(K, BK)):
            offs_k = i_k * BK + tl.arange(0, BK)
            tk = idx[:, None] * (H * K) + offs_k[None, :]
            mask = mask_t[:, None] & (offs_k < K)[None, :]
            k_c = tl.load(k + row0 * K + tk, mask=mask, other=0.0).to(tl.float32)
            tl.store(w + row0 * K + tk, tl.dot(X, k_c * Gamma[:, None], input_precision=PREC), mask=mask)
        for i_v in range(tl.cdiv(V, BV)):
            offs_v = i_v * BV + tl.arange(0, BV)
            tv = idx[:, None] * (H * V) + offs_v[None, :]
            mask = mask_t[:, None] & (offs_v < V)[None, :]
            v_c = tl.load(v + row0 * V + tv, mask=mask, other=0.0).to(tl.float32)
            tl.store(u0 + row0 * V + tv, tl.dot(X, v_c, input_precision=PREC), mask=mask)


@_tuned(_STATE_CONFIGS, key=["K", "V", "DELTA"])
@triton.jit
def _state_kernel(
    k, v, gam, beta, w, u0, h0, h, u, ht,  # h0 may be None; w, u0, u only for the delta rule
    T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DELTA: tl.constexpr, USE_H0: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """Grid (B·H, NV). Writes h [B, H, NC, K, V] (the state entering each chunk), the final state ht [B, H, K, V]
    and, for the delta rule, the written values u = u0 − w S [B, T, H, V], all fp32."""
    i_bh = tl.program_id(0).to(tl.int64)
    i_v = tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    offs_k = tl.arange(0, BK)  # all of K: the state's rows are never split
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_k, mask_v = offs_k < K, offs_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    offs_kv = offs_k[:, None] * V + offs_v[None, :]
    idx = tl.arange(0, BT)

    S = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        S += tl.load(h0 + i_bh * K * V + offs_kv, mask=mask_kv, other=0.0).to(tl.float32)
    n_chunks = tl.cdiv(T, BT)
    for i_c in range(n_chunks):
        tl.store(h + (i_bh * n_chunks + i_c) * K * V + offs_kv, S, mask=mask_kv)
        t0 = i_c * BT
        row0 = (i_b * T + t0) * H + i_h  # int64; offsets inside the chunk are small
        mask_t = t0 + idx < T
        tk = idx[:, None] * (H * K) + offs_k[None, :]  # [BT, BK] offsets from the chunk's first row
        tv = idx[:, None] * (H * V) + offs_v[None, :]
        mask_tk = mask_t[:, None] & mask_k[None, :]
        mask_tv = mask_t[:, None] & mask_v[None, :]
        if DELTA:
            w_c = tl.load(w + row0 * K + tk, mask=mask_tk, other=0.0)
            u_c = tl.load(u0 + row0 * V + tv, mask=mask_tv, other=0.0)
            u_c -= tl.dot(w_c, S, input_precision=PREC)  # v_t − S'_tᵀ k_t for every t of the chunk at once
            tl.store(u + row0 * V + tv, u_c, mask=mask_tv)
        else:
            u_c = tl.load(v + row0 * V + tv, mask=mask_tv, other=0.0).to(tl.float32)
        # padded tokens have k = β = 0 and write nothing, whatever γ loads there
        gamma = tl.load(gam + row0 + idx * H, mask=mask_t, other=0.0)
        gamma_last = tl.load(gam + row0 + (tl.minimum(T - t0, BT) - 1) * H)
        b = tl.load(beta + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32)
        k_c = tl.load(k + row0 * K + tk, mask=mask_tk, other=0.0).to(tl.float32)
        k_c = k_c * (b * tl.exp(gamma_last - gamma))[:, None]  # β_j e^{γ_last − γ_j} k_j
        S = S * tl.exp(gamma_last) + tl.dot(tl.trans(k_c), u_c, input_precision=PREC)
    tl.store(ht + i_bh * K * V + offs_kv, S, mask=mask_kv)


@_tuned(_OUTPUT_CONFIGS, key=["K", "V"])
@triton.jit
def _output_kernel(
    q, k, gam, beta, h, u, o,  # u: the written values (v itself for hebbian)
    scale, T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    PREC: tl.constexpr,
):  # fmt: skip
    """Grid (B·H, NC, NV). o_t = scale (Γ_t h_cᵀ q_t + Σ_{j≤t} e^{γ_t − γ_j} β_j (q_t·k_j) u_j)."""
    i_bh = tl.program_id(0).to(tl.int64)  # B·H on the grid's first axis, the one without a 65,535 limit
    i_c = tl.program_id(1).to(tl.int64)
    i_v = tl.program_id(2).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    n_chunks = tl.cdiv(T, BT)
    t0 = i_c * BT
    row0 = (i_b * T + t0) * H + i_h  # int64; offsets inside the chunk are small
    idx = tl.arange(0, BT)
    mask_t = t0 + idx < T
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_v = offs_v < V
    mask_tv = mask_t[:, None] & mask_v[None, :]
    tv = idx[:, None] * (H * V) + offs_v[None, :]

    inter = tl.zeros([BT, BV], dtype=tl.float32)  # q h_c
    qk = tl.zeros([BT, BT], dtype=tl.float32)  # q kᵀ
    for i_k in range(tl.cdiv(K, BK)):
        offs_k = i_k * BK + tl.arange(0, BK)
        mask_k = offs_k < K
        mask_tk = mask_t[:, None] & mask_k[None, :]
        tk = idx[:, None] * (H * K) + offs_k[None, :]
        q_c = tl.load(q + row0 * K + tk, mask=mask_tk, other=0.0).to(tl.float32)
        k_c = tl.load(k + row0 * K + tk, mask=mask_tk, other=0.0).to(tl.float32)
        p_h = h + (i_bh * n_chunks + i_c) * K * V + offs_k[:, None] * V + offs_v[None, :]
        h_c = tl.load(p_h, mask=mask_k[:, None] & mask_v[None, :], other=0.0)
        inter += tl.dot(q_c, h_c, input_precision=PREC)
        qk += tl.dot(q_c, tl.trans(k_c), input_precision=PREC)

    gamma = tl.load(gam + row0 + idx * H, mask=mask_t, other=0.0)
    b = tl.load(beta + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32)
    # rows past T are dropped: masking them keeps e^{γ_t − γ_j} from seeing their γ = 0 (a positive exponent)
    causal = (idx[:, None] >= idx[None, :]) & mask_t[:, None]
    decay = tl.exp(tl.where(causal, gamma[:, None] - gamma[None, :], 0.0))
    qk = tl.where(causal, qk * decay * b[None, :], 0.0)
    u_c = tl.load(u + row0 * V + tv, mask=mask_tv, other=0.0).to(tl.float32)
    o_c = (inter * tl.exp(gamma)[:, None] + tl.dot(qk, u_c, input_precision=PREC)) * scale
    tl.store(o + row0 * V + tv, o_c.to(o.dtype.element_ty), mask=mask_tv)


def precision(dtype: torch.dtype) -> str:
    """tl.dot's input_precision for inputs of this dtype: TF32 for bf16/fp16 (their values are exact in TF32), IEEE
    for fp32 and fp64 (TF32 keeps 10 mantissa bits, far from the fp32 reference's 1e-4)."""
    return "tf32" if dtype in (torch.float16, torch.bfloat16) else "ieee"


def _pad16(n: int) -> int:
    """Tile size for n columns: a power of two, and at least 16, tl.dot's smallest."""
    return max(16, triton.next_power_of_2(n))


def _fixed_block_v(V: int, interpret: bool = INTERPRET) -> int:
    """The V-block of a fixed config: all of V in the interpreter (it runs programs one after another, so fewer is
    faster); at most 32 columns on a GPU, so the sequential state passes have several programs per head."""
    return _pad16(V) if interpret else min(_pad16(V), 32)


def _launch(kernel, grid, *args, tuned: dict, **consts) -> None:
    """Launch; the `tuned` meta-parameters (and warps, stages) are the autotuner's to choose, or fixed without it."""
    kernel[grid](*args, **consts, **({} if AUTOTUNE else tuned | FIXED_LAUNCH))


def forward_chunked(
    q: torch.Tensor,  # [B, T, H, K], contiguous like every input here
    k: torch.Tensor,  # [B, T, H, K]
    v: torch.Tensor,  # [B, T, H, V]
    g: torch.Tensor,  # [B, T, H]
    beta: torch.Tensor,  # [B, T, H]
    initial_state: torch.Tensor | None,  # [B, H, K, V]
    delta: bool,
    scale: float,
    x_out: torch.Tensor | None = None,  # [B, T, H, CHUNK] fp32: receives each chunk's X = (I + A)⁻¹ (delta only)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (o [B, T, H, V] in v's dtype, final state [B, H, K, V] fp32, chunk-start states [B, H, NC, K, V] fp32,
    written values u [B, T, H, V]: fp32 u_t = v_t − S'_tᵀ k_t for delta, v itself for hebbian).

    The last two are what the backwards need; the forward needs them too, so they cost nothing extra. The
    chunked backward of the delta rule also needs X, which the forward computes anyway: pass x_out to keep it.
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    NC = triton.cdiv(T, CHUNK)
    BK_all = _pad16(K)
    BK, BV = min(BK_all, BLOCK), min(_pad16(V), BLOCK)
    prec = precision(v.dtype)
    dev, f32 = v.device, torch.float32
    gam = torch.empty(B, T, H, dtype=f32, device=dev)
    h = torch.empty(B, H, NC, K, V, dtype=f32, device=dev)
    ht = torch.empty(B, H, K, V, dtype=f32, device=dev)
    o = torch.empty(B, T, H, V, dtype=v.dtype, device=dev)
    w = u0 = None
    u = v
    if delta:
        w = torch.empty(B, T, H, K, dtype=f32, device=dev)
        u0 = torch.empty(B, T, H, V, dtype=f32, device=dev)
        u = torch.empty(B, T, H, V, dtype=f32, device=dev)
    consts = dict(H=H, K=K, V=V, BT=CHUNK, PREC=prec)
    fixed_bv = {"BV": _fixed_block_v(V)}

    _launch(
        _prep_kernel, (B * H, NC), k, v, g, beta, gam, w, u0, x_out, T,
        tuned={}, BK=BK, BV=BV, DELTA=delta, STORE_X=delta and x_out is not None, **consts,
    )  # fmt: skip
    _launch(
        _state_kernel, lambda meta: (B * H, triton.cdiv(V, meta["BV"])),
        k, v, gam, beta, w, u0, initial_state, h, u if delta else None, ht, T,
        tuned=fixed_bv, BK=BK_all, DELTA=delta, USE_H0=initial_state is not None, **consts,
    )  # fmt: skip
    _launch(
        _output_kernel, lambda meta: (B * H, NC, triton.cdiv(V, meta["BV"])),
        q, k, gam, beta, h, u, o, scale, T,
        tuned=fixed_bv, BK=BK, **consts,
    )  # fmt: skip
    return o, ht, h, u
