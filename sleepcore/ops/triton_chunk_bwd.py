"""Chunked fast-weight backward in Triton, for both rules (derivation and design in README.md).

It inverts triton_chunk.py's forward chunk by chunk. Per chunk (C = 64 tokens, γ the cumulative log gate inside
it, Γ = e^γ, h_c the state entering it, dh_c the gradient of the loss with respect to the state leaving it):

1. `_dstate_kernel`, grid (B·H, NV), the only sequential part: one pass over the chunks, last first, carrying
   dS [K, BV] fp32 in registers; stores dh_c and hands on dS ← e^{γ_C} dS + (Γ ⊙ scale q)ᵀ dO (− (Γ ⊙ k)ᵀ dR for
   the delta rule, where dR = Xᵀ dU is the gradient through the WY solve; it stores dR, which is dv).
2. `_grad_kernel`, grid (B·H, NC, NV), chunk-parallel: dq, dk, dβ, dg (and dv for hebbian) of each chunk from
   h_c, dh_c, u (and dR) with C×C matrix products; dg as a reverse cumulative sum of dγ inside the chunk.
   With one V-block it writes the gradients in their inputs' dtypes; with several, fp32 partials to be summed.

Every exponent is γ_t − γ_j with j ≤ t, γ_t, or γ_C − γ_j: never positive. V-blocks see only their columns of the
state, so dq, dk, dg, dβ are per-V-block partials, summed afterwards (V-blocks of the parallel kernel are fixed,
not autotuned, because the partial buffers are sized by them). Layout as in triton_chunk.py.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from sleepcore.ops import triton_chunk as tc
from sleepcore.ops.triton_chunk import BLOCK, CHUNK, INTERPRET, _launch, _pad16, _tuned

_DSTATE_CONFIGS = [
    triton.Config({"BV": bv}, num_warps=w, num_stages=s) for bv in (16, 32, 64) for w in (4, 8) for s in (1, 2)
]
_GRAD_CONFIGS = [triton.Config({}, num_warps=w, num_stages=s) for w in (4, 8) for s in (1, 2)]


@_tuned(_DSTATE_CONFIGS, key=["K", "V", "DELTA"])
@triton.jit
def _dstate_kernel(
    q, k, g, beta, do, dht, xs, dh, dr, dh0,  # dht, dh0 may be None; xs, dr only for the delta rule
    scale, T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DELTA: tl.constexpr, USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """Grid (B·H, NV). Writes dh [B, H, NC, K, V] (the gradient for the state leaving each chunk), dh0, and for the
    delta rule dR [B, T, H, V] fp32, all fp32."""
    i_bh = tl.program_id(0).to(tl.int64)
    i_v = tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    offs_k = tl.arange(0, BK)  # all of K
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_k, mask_v = offs_k < K, offs_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    offs_kv = offs_k[:, None] * V + offs_v[None, :]
    idx = tl.arange(0, BT)

    dS = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        dS += tl.load(dht + i_bh * K * V + offs_kv, mask=mask_kv, other=0.0).to(tl.float32)
    n_chunks = tl.cdiv(T, BT)
    for i in range(n_chunks):
        i_c = n_chunks - 1 - i
        tl.store(dh + (i_bh * n_chunks + i_c) * K * V + offs_kv, dS, mask=mask_kv)
        t0 = i_c * BT
        row0 = (i_b * T + t0) * H + i_h  # int64; offsets inside the chunk are small
        mask_t = t0 + idx < T
        tk = idx[:, None] * (H * K) + offs_k[None, :]
        tv = idx[:, None] * (H * V) + offs_v[None, :]
        mask_tk = mask_t[:, None] & mask_k[None, :]
        mask_tv = mask_t[:, None] & mask_v[None, :]
        g_c = tl.load(g + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32)
        gamma = tl.cumsum(g_c, 0)  # padded tokens load g = 0: γ stays at γ_C past the end
        gamma_last = tl.sum(tl.where(idx == BT - 1, gamma, 0.0), 0)  # γ_C, the very number e^{γ_C − γ_C} needs
        Gamma = tl.exp(gamma)
        q_c = tl.load(q + row0 * K + tk, mask=mask_tk, other=0.0).to(tl.float32) * scale
        do_c = tl.load(do + row0 * V + tv, mask=mask_tv, other=0.0).to(tl.float32)
        new = dS * tl.exp(gamma_last) + tl.dot(tl.trans(q_c * Gamma[:, None]), do_c, input_precision=PREC)
        if DELTA:
            k_c = tl.load(k + row0 * K + tk, mask=mask_tk, other=0.0).to(tl.float32)
            b = tl.load(beta + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32)
            causal = idx[:, None] >= idx[None, :]
            decay = tl.exp(tl.where(causal, gamma[:, None] - gamma[None, :], 0.0))
            qk = tl.dot(q_c, tl.trans(k_c), input_precision=PREC)
            qk = tl.where(causal, qk * decay * b[None, :], 0.0)  # the output's (M ⊙ q kᵀ) diag(β)
            # dU: through the outputs, and through the state leaving the chunk (dS is still that gradient here)
            du = tl.dot(tl.trans(qk), do_c, input_precision=PREC)
            du += tl.dot(k_c, dS, input_precision=PREC) * (b * tl.exp(gamma_last - gamma))[:, None]
            x_c = tl.load(xs + row0 * BT + idx[:, None] * (H * BT) + idx[None, :], mask=mask_t[:, None], other=0.0)
            dr_c = tl.dot(tl.trans(x_c), du, input_precision=PREC)  # dR = Xᵀ dU, the gradient of V − Γ K h_c
            tl.store(dr + row0 * V + tv, dr_c, mask=mask_tv)
            new -= tl.dot(tl.trans(k_c * Gamma[:, None]), dr_c, input_precision=PREC)
        dS = new
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + offs_kv, dS, mask=mask_kv)


@_tuned(_GRAD_CONFIGS, key=["K", "V", "DELTA"])
@triton.jit
def _grad_kernel(
    q, k, u, g, beta, h, dh, do, dr,  # u: the written values (v itself for hebbian); dr only for the delta rule
    dq, dk, dv, dg, dbeta,  # dq, dk [NV, B, T, H, K] and dg, dbeta [NV, B, T, H] partials (fp32 unless NV = 1)
    scale, T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    DELTA: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """Grid (B·H, NC, NV): the gradients of one chunk, one (batch, head), one block of V columns."""
    i_bh = tl.program_id(0).to(tl.int64)  # B·H on the grid's first axis, the one without a 65,535 limit
    i_c = tl.program_id(1).to(tl.int64)
    i_v = tl.program_id(2).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    B = tl.num_programs(0) // H
    n_chunks = tl.cdiv(T, BT)
    t0 = i_c * BT
    row0 = (i_b * T + t0) * H + i_h
    part = i_v * B * T * H  # where this V-block's partial gradients start, in rows
    idx = tl.arange(0, BT)
    mask_t = t0 + idx < T
    offs_k = tl.arange(0, BK)  # all of K
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_k, mask_v = offs_k < K, offs_v < V
    mask_tk = mask_t[:, None] & mask_k[None, :]
    mask_tv = mask_t[:, None] & mask_v[None, :]
    tk = idx[:, None] * (H * K) + offs_k[None, :]
    tv = idx[:, None] * (H * V) + offs_v[None, :]
    p_kv = (i_bh * n_chunks + i_c) * K * V + offs_k[:, None] * V + offs_v[None, :]
    mask_kv = mask_k[:, None] & mask_v[None, :]

    g_c = tl.load(g + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32)
    gamma = tl.cumsum(g_c, 0)  # padded tokens load g = 0: γ stays at γ_C past the end
    gamma_last = tl.sum(tl.where(idx == BT - 1, gamma, 0.0), 0)  # γ_C, the very number e^{γ_C − γ_C} needs
    Gamma = tl.exp(gamma)
    to_end = tl.exp(gamma_last - gamma)  # e^{γ_C − γ_j} <= 1
    b = tl.load(beta + row0 + idx * H, mask=mask_t, other=0.0).to(tl.float32)
    q_c = tl.load(q + row0 * K + tk, mask=mask_tk, other=0.0).to(tl.float32) * scale
    k_c = tl.load(k + row0 * K + tk, mask=mask_tk, other=0.0).to(tl.float32)
    u_c = tl.load(u + row0 * V + tv, mask=mask_tv, other=0.0).to(tl.float32)
    do_c = tl.load(do + row0 * V + tv, mask=mask_tv, other=0.0).to(tl.float32)
    h_c = tl.load(h + p_kv, mask=mask_kv, other=0.0)  # the state entering the chunk
    dh_c = tl.load(dh + p_kv, mask=mask_kv, other=0.0)  # the gradient for the state leaving it

    causal = idx[:, None] >= idx[None, :]
    decay = tl.exp(tl.where(causal, gamma[:, None] - gamma[None, :], 0.0))
    decay = tl.where(causal, decay, 0.0)  # M
    qk = tl.dot(q_c, tl.trans(k_c), input_precision=PREC) * decay  # M ⊙ scale q kᵀ
    dou = tl.dot(do_c, tl.trans(u_c), input_precision=PREC)  # dO Uᵀ
    # o = Γ ⊙ (scale q) h_c + (M ⊙ scale q kᵀ) diag(β) U
    wn = dou * qk  # dβ_j = Σ_t wn_tj; with β, the exponent's share: dγ_t += Σ_j w_tj, dγ_j −= Σ_t w_tj
    w = wn * b[None, :]
    z = dou * decay * b[None, :]
    inter = tl.dot(do_c, tl.trans(h_c), input_precision=PREC) * Gamma[:, None]  # Γ ⊙ dO h_cᵀ
    dq_c = inter + tl.dot(z, k_c, input_precision=PREC)  # for scale q
    dk_c = tl.dot(tl.trans(z), q_c, input_precision=PREC)
    dgam = tl.sum(w, 1) - tl.sum(w, 0) + tl.sum(q_c * inter, 1)
    db = tl.sum(wn, 0)
    # S_C = e^{γ_C} h_c + kᵀ diag(β e^{γ_C − γ}) U
    udh = tl.dot(u_c, tl.trans(dh_c), input_precision=PREC)  # U dh_cᵀ  [BT, BK]
    dk_c += udh * (b * to_end)[:, None]
    y = tl.sum(k_c * udh, 1) * to_end
    db += y
    y = y * b
    dgam -= y
    dgam_last = tl.sum(y, 0) + tl.exp(gamma_last) * tl.sum(tl.sum(h_c * dh_c, 1), 0)
    if DELTA:
        # U = X (V − Γ ⊙ K h_c), X = (I + A)⁻¹: dR = Xᵀ dU came from the state pass; dA = −dR Uᵀ (strictly lower)
        dr_c = tl.load(dr + row0 * V + tv, mask=mask_tv, other=0.0)
        strict = idx[:, None] > idx[None, :]
        da = -tl.dot(dr_c, tl.trans(u_c), input_precision=PREC)
        kk = tl.dot(k_c, tl.trans(k_c), input_precision=PREC)
        # A_tj = β_j e^{γ_t − γ_j} k_t·k_j
        gg = tl.where(strict, da * decay * kk, 0.0)
        db += tl.sum(gg, 0)
        p = gg * b[None, :]
        dgam += tl.sum(p, 1) - tl.sum(p, 0)
        f = tl.where(strict, da * decay * b[None, :], 0.0)
        dk_c += tl.dot(f, k_c, input_precision=PREC) + tl.dot(tl.trans(f), k_c, input_precision=PREC)
        rh = tl.dot(dr_c, tl.trans(h_c), input_precision=PREC) * Gamma[:, None]  # Γ ⊙ dR h_cᵀ
        dk_c -= rh
        dgam -= tl.sum(k_c * rh, 1)
        tl.store(dv + row0 * V + tv, dr_c.to(dv.dtype.element_ty), mask=mask_tv)  # v enters only through R
    else:
        du = tl.dot(tl.trans(qk * b[None, :]), do_c, input_precision=PREC)
        du += tl.dot(k_c, dh_c, input_precision=PREC) * (b * to_end)[:, None]
        tl.store(dv + row0 * V + tv, du.to(dv.dtype.element_ty), mask=mask_tv)
    dgam += tl.where(idx == tl.minimum(T - t0, BT) - 1, dgam_last, 0.0)
    dg_c = tl.cumsum(dgam, 0, reverse=True)  # g_t enters every γ_s with s >= t in its chunk

    tl.store(dq + (part + row0) * K + tk, (dq_c * scale).to(dq.dtype.element_ty), mask=mask_tk)
    tl.store(dk + (part + row0) * K + tk, dk_c.to(dk.dtype.element_ty), mask=mask_tk)
    tl.store(dg + part + row0 + idx * H, dg_c.to(dg.dtype.element_ty), mask=mask_t)
    tl.store(dbeta + part + row0 + idx * H, db.to(dbeta.dtype.element_ty), mask=mask_t)


def _grad_block_v(V: int, interpret: bool = INTERPRET) -> int:
    """The parallel kernel's V-block: fixed (it sizes the partial buffers), all of V in the interpreter."""
    return tc._fixed_block_v(V, interpret) if interpret else min(_pad16(V), BLOCK)


def backward_chunked(
    saved: tuple[torch.Tensor | None, ...],  # q, k, v, g, beta, h, u, xs (xs: X per chunk, delta only)
    do: torch.Tensor,
    dht: torch.Tensor | None,
    delta: bool,
    scale: float,
    want_dh0: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients (dq, dk, dv, dg, dbeta) in their inputs' dtypes, and dh0 [B, H, K, V] fp32 or None."""
    q, k, v, g, beta, h, u, xs = saved
    B, T, H, K = q.shape
    V = v.shape[-1]
    NC = triton.cdiv(T, CHUNK)
    BK = _pad16(K)
    BV = _grad_block_v(V)
    NV = triton.cdiv(V, BV)
    prec = tc.precision(v.dtype)
    dev, f32 = q.device, torch.float32
    do = do.contiguous()
    dh = torch.empty(B, H, NC, K, V, dtype=f32, device=dev)
    dh0 = torch.empty(B, H, K, V, dtype=f32, device=dev) if want_dh0 else None
    dr = torch.empty(B, T, H, V, dtype=f32, device=dev) if delta else None
    # with one V-block the kernel writes the gradients themselves, in their inputs' dtypes; else fp32 partials
    dq, dk, dg, dbeta = (
        torch.empty(NV, *x.shape, dtype=x.dtype if NV == 1 else f32, device=dev) for x in (q, k, g, beta)
    )
    dv = torch.empty(B, T, H, V, dtype=v.dtype, device=dev)
    consts = dict(H=H, K=K, V=V, BT=CHUNK, BK=BK, DELTA=delta, PREC=prec)

    _launch(
        _dstate_kernel, lambda meta: (B * H, triton.cdiv(V, meta["BV"])),
        q, k, g, beta, do, None if dht is None else dht.contiguous(), xs, dh, dr, dh0, scale, T,
        tuned={"BV": tc._fixed_block_v(V)}, USE_DHT=dht is not None, STORE_DH0=want_dh0, **consts,
    )  # fmt: skip
    _launch(
        _grad_kernel, (B * H, NC, NV),
        q, k, u, g, beta, h, dh, do, dr, dq, dk, dv, dg, dbeta, scale, T,
        tuned={}, BV=BV, **consts,
    )  # fmt: skip
    if NV == 1:
        return dq[0], dk[0], dv, dg[0], dbeta[0], dh0
    # the V-blocks each saw only their columns of the state: their shares of dq, dk, dg, dbeta add up
    return dq.sum(0).to(q.dtype), dk.sum(0).to(k.dtype), dv, dg.sum(0).to(g.dtype), dbeta.sum(0).to(beta.dtype), dh0
