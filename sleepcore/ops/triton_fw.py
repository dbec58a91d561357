"""Fused recurrent fast-weight kernels in Triton: forward and backward (design notes in README.md).

One program per (batch·head, V-block) holds its [K, BV] slice of the state in fp32 registers and walks the
tokens in order. Both rules act on each column of the state independently (S_tᵀ k_t is a per-column dot
product), so V-blocks never talk to each other; the backward sums the per-block partial gradients of
q, k, g and beta afterwards.

For a backward, the forward also stores the state every CHUNK tokens and the written values
u_t = v_t − S'_tᵀ k_t (delta rule). The backward goes through the chunks from last to first: it recomputes the
chunk's decayed states S'_t = exp(g_t) S_{t-1} from the checkpoint into a per-program scratch buffer, then
walks the chunk backwards. Inverting the recurrence instead (S_{t-1} from S_t) would divide by exp(g_t) and,
for the delta rule, by (I − beta_t k_t k_tᵀ), which amplifies rounding without bound.

fast_weight_triton runs the chunked forward of triton_chunk.py instead from T = CHUNKED_MIN_T on (or when asked):
its chunk-start states and written values are exactly these checkpoints and u, so this backward also serves
after it; by default the chunked forward is followed by the chunked backward of triton_chunk_bwd.py.

Layout: q, k [B, T, H, K]; v, o [B, T, H, V]; g, beta [B, T, H]; state [B, H, K, V] fp32. Letters as in
sleepcore/ops/__init__.py; BK (≥ K) and BV are the power-of-two tile sizes, CHUNK the checkpoint stride.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
import triton
import triton.language as tl
from triton.runtime.errors import OutOfResources

from sleepcore.ops import _check_shapes
from sleepcore.ops.triton_chunk import CHUNK, forward_chunked
from sleepcore.ops.triton_chunk_bwd import backward_chunked

# CHUNK: tokens between state checkpoints (the chunked forward's chunk length); also the backward's scratch length
MAX_K = 256  # the [K, BV] state tile lives in registers; beyond this it would spill
CHUNKED_MIN_T = 64  # "auto" takes the chunked forward from this length on (one full chunk), the recurrent below it
ALGORITHMS = ("auto", "chunked", "recurrent")
# after the chunked forward, these rules take the chunked backward (triton_chunk_bwd.py); others the recurrent one
CHUNKED_BACKWARD_RULES = ("hebbian", "delta")


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _fwd_kernel(
    q, k, v, g, beta, h0, o, ht, ckpt, u,  # pointers; h0, ckpt and u may be None
    scale, T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    CHUNK: tl.constexpr, DELTA: tl.constexpr, USE_H0: tl.constexpr, STORE_CKPT: tl.constexpr,
):  # fmt: skip
    """Grid (B·H, cdiv(V, BV)). Writes o [B, T, H, V] and ht [B, H, K, V]; for the backward also the
    checkpoints ckpt [B, H, NC, K, V] and (delta rule) the written values u [B, T, H, V]."""
    i_bh = tl.program_id(0).to(tl.int64)  # every offset below derives from these: int64 for any B·T·H
    i_v = tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    offs_k = tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_k, mask_v = offs_k < K, offs_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    offs_kv = offs_k[:, None] * V + offs_v[None, :]
    # pointers at token 0; each token moves them on by one (b, t, h) row, H rows of [B, T, H]
    row = i_b * T * H + i_h
    p_q, p_k = q + row * K + offs_k, k + row * K + offs_k
    p_v, p_o = v + row * V + offs_v, o + row * V + offs_v
    p_g, p_beta = g + row, beta + row

    S = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        S += tl.load(h0 + i_bh * K * V + offs_kv, mask=mask_kv, other=0.0).to(tl.float32)
    n_chunks = tl.cdiv(T, CHUNK)
    for c in range(n_chunks):
        if STORE_CKPT:
            tl.store(ckpt + (i_bh * n_chunks + c) * K * V + offs_kv, S, mask=mask_kv)
        for _ in range(c * CHUNK, tl.minimum(T, (c + 1) * CHUNK)):
            q_t = tl.load(p_q, mask=mask_k, other=0.0).to(tl.float32) * scale
            k_t = tl.load(p_k, mask=mask_k, other=0.0).to(tl.float32)
            u_t = tl.load(p_v, mask=mask_v, other=0.0).to(tl.float32)
            beta_t = tl.load(p_beta).to(tl.float32)
            S = S * tl.exp(tl.load(p_g).to(tl.float32))
            if DELTA:
                u_t -= tl.sum(S * k_t[:, None], 0)  # v_t − S'_tᵀ k_t
                if STORE_CKPT:
                    tl.store(u + row * V + offs_v, u_t, mask=mask_v)
            S += beta_t * k_t[:, None] * u_t[None, :]
            o_t = tl.sum(S * q_t[:, None], 0)  # S_tᵀ (scale q_t)  [BV]
            tl.store(p_o, o_t.to(p_o.dtype.element_ty), mask=mask_v)
            p_q, p_k, p_v, p_o = p_q + H * K, p_k + H * K, p_v + H * V, p_o + H * V
            p_g, p_beta, row = p_g + H, p_beta + H, row + H
    tl.store(ht + i_bh * K * V + offs_kv, S, mask=mask_kv)


@triton.jit
def _bwd_kernel(
    q, k, u, g, beta, do, dht, ckpt, scratch,  # u: the written values (v itself for hebbian); dht may be None
    dq, dk, dv, dg, dbeta, dh0,  # dq, dk [NV, B, T, H, K] and dg, dbeta [NV, B, T, H] are per-V-block partials
    scale, T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    CHUNK: tl.constexpr, DELTA: tl.constexpr, USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr,
):  # fmt: skip
    """Grid (B·H, NV). dS is the gradient of the loss with respect to the state after token t."""
    i_bh = tl.program_id(0).to(tl.int64)
    i_v = tl.program_id(1).to(tl.int64)
    i_b, i_h = i_bh // H, i_bh % H
    NV = tl.num_programs(1)
    B = tl.num_programs(0) // H
    offs_k = tl.arange(0, BK)
    offs_v = i_v * BV + tl.arange(0, BV)
    mask_k, mask_v = offs_k < K, offs_v < V
    mask_kv = mask_k[:, None] & mask_v[None, :]
    offs_kv = offs_k[:, None] * V + offs_v[None, :]
    # this program's [CHUNK, BK, BV] scratch; padded rows and columns hold zeros, so no mask is needed
    scr = scratch + (i_bh * NV + i_v) * CHUNK * BK * BV + offs_k[:, None] * BV + tl.arange(0, BV)[None, :]
    row0 = i_b * T * H + i_h  # row of (b, 0, h) in [B, T, H]
    part = i_v * B * T * H  # where this V-block's partial gradients start, in rows

    dS = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        dS += tl.load(dht + i_bh * K * V + offs_kv, mask=mask_kv, other=0.0).to(tl.float32)
    n_chunks = tl.cdiv(T, CHUNK)
    for i_c in range(n_chunks):
        c = n_chunks - 1 - i_c
        t0 = c * CHUNK
        n = tl.minimum(T - t0, CHUNK)  # tokens in this chunk

        # Forward again from the checkpoint: keep each decayed state S'_t in the scratch, and take
        # dq_t = scale S_t do_t, which needs the states but not dS.
        S = tl.load(ckpt + (i_bh * n_chunks + c) * K * V + offs_kv, mask=mask_kv, other=0.0)
        row = row0 + t0 * H
        p_k, p_dq = k + row * K + offs_k, dq + (part + row) * K + offs_k
        p_u, p_do = u + row * V + offs_v, do + row * V + offs_v
        p_g, p_beta = g + row, beta + row
        for i in range(n):
            k_t = tl.load(p_k, mask=mask_k, other=0.0).to(tl.float32)
            u_t = tl.load(p_u, mask=mask_v, other=0.0).to(tl.float32)
            do_t = tl.load(p_do, mask=mask_v, other=0.0).to(tl.float32)
            S = S * tl.exp(tl.load(p_g).to(tl.float32))
            tl.store(scr + i * BK * BV, S)
            S += tl.load(p_beta).to(tl.float32) * k_t[:, None] * u_t[None, :]
            tl.store(p_dq, tl.sum(S * do_t[None, :], 1) * scale, mask=mask_k)
            p_k, p_dq, p_u, p_do = p_k + H * K, p_dq + H * K, p_u + H * V, p_do + H * V
            p_g, p_beta = p_g + H, p_beta + H
        tl.debug_barrier()  # the scratch written above is read below by other threads of this program

        # Then backwards through the chunk, from its last token, carrying dS.
        row = row0 + (t0 + n - 1) * H
        p_q, p_k, p_dk = q + row * K + offs_k, k + row * K + offs_k, dk + (part + row) * K + offs_k
        p_u, p_do, p_dv = u + row * V + offs_v, do + row * V + offs_v, dv + row * V + offs_v
        p_g, p_beta, p_dg, p_dbeta = g + row, beta + row, dg + part + row, dbeta + part + row
        for i_t in range(n):
            q_t = tl.load(p_q, mask=mask_k, other=0.0).to(tl.float32) * scale
            k_t = tl.load(p_k, mask=mask_k, other=0.0).to(tl.float32)
            u_t = tl.load(p_u, mask=mask_v, other=0.0).to(tl.float32)
            do_t = tl.load(p_do, mask=mask_v, other=0.0).to(tl.float32)
            beta_t = tl.load(p_beta).to(tl.float32)
            S_dec = tl.load(scr + (n - 1 - i_t) * BK * BV)  # S'_t

            dS += q_t[:, None] * do_t[None, :]  # o_t = S_tᵀ (scale q_t)
            # S_t = S'_t + beta_t k_t u_tᵀ
            dS_u = tl.sum(dS * u_t[None, :], 1)  # [BK]
            dk_t = beta_t * dS_u
            dbeta_t = tl.sum(k_t * dS_u, 0)
            du = beta_t * tl.sum(dS * k_t[:, None], 0)  # [BV]; dv_t = du_t
            if DELTA:  # u_t = v_t − S'_tᵀ k_t
                dS -= k_t[:, None] * du[None, :]
                dk_t -= tl.sum(S_dec * du[None, :], 1)
            # S'_t = exp(g_t) S_{t-1}, so dg_t = <dS'_t, S'_t>
            tl.store(p_dg, tl.sum(dS * S_dec))
            dS = dS * tl.exp(tl.load(p_g).to(tl.float32))

            tl.store(p_dk, dk_t, mask=mask_k)
            tl.store(p_dv, du.to(p_dv.dtype.element_ty), mask=mask_v)
            tl.store(p_dbeta, dbeta_t)
            # adding negative constants: pointer subtraction is slow in the interpreter
            p_q, p_k, p_dk = p_q + (-H * K), p_k + (-H * K), p_dk + (-H * K)
            p_u, p_do, p_dv = p_u + (-H * V), p_do + (-H * V), p_dv + (-H * V)
            p_g, p_beta, p_dg, p_dbeta = p_g + (-H), p_beta + (-H), p_dg + (-H), p_dbeta + (-H)
        tl.debug_barrier()  # the next chunk overwrites the scratch that was just read
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + offs_kv, dS, mask=mask_kv)


def _block_v(K: int, V: int, interpret: bool | None = None) -> int:
    """Columns of the state per program: V splits into blocks on a GPU to give each head several programs.

    Compiled for sm_90 with 4 warps (`sleepcore bench kernels`, Triton 3.9, 2026-12-05), the backward at K = 128
    and BV = 32 needs 148–165 registers and does not spill; a block twice as wide holds twice the state, so
    K = 256 takes BV = 8. The interpreter runs programs one after another, so there one block per head is
    fastest.
    """
    BV = triton.next_power_of_2(V)
    if _interpreting() if interpret is None else interpret:
        return BV
    return min(BV, 32 if K <= 128 else 8)


def _tiles(K: int, V: int, interpret: bool | None = None) -> tuple[int, int]:
    """Tile sizes (BK, BV): all of K (padded to a power of two), and a block of V (interpret: None for this
    process's mode)."""
    return triton.next_power_of_2(K), _block_v(K, V, interpret)


def _forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: torch.Tensor | None,
    delta: bool,
    scale: float,
    for_backward: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Contiguous inputs -> (o [B, T, H, V], final state [B, H, K, V] fp32, and for the backward: checkpoints
    [B, H, cdiv(T, CHUNK), K, V] fp32 and the written values u [B, T, H, V] fp32, which is v for hebbian)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    BK, BV = _tiles(K, V)
    dev = v.device
    o = torch.empty(B, T, H, V, dtype=v.dtype, device=dev)
    ht = torch.empty(B, H, K, V, dtype=torch.float32, device=dev)
    ckpt = u = None
    if for_backward:
        ckpt = torch.empty(B, H, triton.cdiv(T, CHUNK), K, V, dtype=torch.float32, device=dev)
        u = torch.empty(B, T, H, V, dtype=torch.float32, device=dev) if delta else v
    _fwd_kernel[(B * H, triton.cdiv(V, BV))](
        q, k, v, g, beta, initial_state, o, ht, ckpt, u if delta else None, scale, T,
        H=H, K=K, V=V, BK=BK, BV=BV, CHUNK=CHUNK, DELTA=delta,
        USE_H0=initial_state is not None, STORE_CKPT=for_backward,
    )  # fmt: skip
    return o, ht, ckpt, u


def _backward(
    saved: tuple[torch.Tensor, ...],
    do: torch.Tensor,
    dht: torch.Tensor | None,
    delta: bool,
    scale: float,
    want_dh0: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Gradients (dq, dk, dv, dg, dbeta) in their inputs' dtypes, and dh0 [B, H, K, V] fp32 or None."""
    q, k, v, g, beta, ckpt, u = saved
    B, T, H, K = q.shape
    V = v.shape[-1]
    BK, BV = _tiles(K, V)
    NV = triton.cdiv(V, BV)
    dev = q.device
    scratch = torch.empty(B * H * NV, CHUNK, BK, BV, dtype=torch.float32, device=dev)
    dq = torch.empty(NV, B, T, H, K, dtype=torch.float32, device=dev)
    dk = torch.empty(NV, B, T, H, K, dtype=torch.float32, device=dev)
    dv = torch.empty(B, T, H, V, dtype=v.dtype, device=dev)
    dg = torch.empty(NV, B, T, H, dtype=torch.float32, device=dev)
    dbeta = torch.empty(NV, B, T, H, dtype=torch.float32, device=dev)
    dh0 = torch.empty(B, H, K, V, dtype=torch.float32, device=dev) if want_dh0 else None
    _bwd_kernel[(B * H, NV)](
        q, k, u, g, beta, do.contiguous(), None if dht is None else dht.contiguous(), ckpt, scratch,
        dq, dk, dv, dg, dbeta, dh0, scale, T,
        H=H, K=K, V=V, BK=BK, BV=BV, CHUNK=CHUNK, DELTA=delta, USE_DHT=dht is not None, STORE_DH0=want_dh0,
    )  # fmt: skip
    # the V-blocks each saw only their columns of the state: their shares of dq, dk, dg, dbeta add up
    return dq.sum(0).to(q.dtype), dk.sum(0).to(k.dtype), dv, dg.sum(0).to(g.dtype), dbeta.sum(0).to(beta.dtype), dh0


# (forward or backward, K, V, dtype, rule, device) of the chunked passes found too big for their GPU: those run the
# recurrent kernels from then on, without trying the chunked ones (and allocating their buffers) at every call
_TOO_BIG: set[tuple] = set()


def _shape_key(what: str, q: torch.Tensor, v: torch.Tensor, delta: bool) -> tuple:
    return what, q.shape[-1], v.shape[-1], v.dtype, delta, q.device


def _too_big(what: str, q: torch.Tensor, v: torch.Tensor, delta: bool, err: OutOfResources) -> None:
    """Remember that a chunked pass did not fit this GPU at this shape, and warn that the recurrent one runs."""
    _TOO_BIG.add(_shape_key(what, q, v, delta))
    warnings.warn(
        f"the chunked Triton {what} needs more than this GPU has at K={q.shape[-1]}, V={v.shape[-1]}, {v.dtype} "
        f"({err}); running the recurrent {what} instead (same results, slower for long T)",
        stacklevel=2,  # the pass that fell back (the caller's line is inside torch's autograd or this module)
    )


def _chunked_or_recurrent(q, k, v, g, beta, initial_state, delta, scale, for_backward, x_out=None):
    """forward_chunked or, where a chunked kernel needs more shared memory than this GPU has at this shape (large
    heads, small GPUs), the recurrent forward: (o, final state, checkpoints, u, whether it ran chunked)."""
    if _shape_key("forward", q, v, delta) not in _TOO_BIG:
        try:
            return (*forward_chunked(q, k, v, g, beta, initial_state, delta, scale, x_out=x_out), True)
        except OutOfResources as err:
            _too_big("forward", q, v, delta, err)
    return (*_forward(q, k, v, g, beta, initial_state, delta, scale, for_backward=for_backward), False)


class _FastWeightFn(torch.autograd.Function):
    """The recurrent forward and backward, or the chunked forward and backward. Both forwards leave the same
    checkpoints and u behind, so the recurrent backward also serves after the chunked forward (the fallback for a
    rule not in CHUNKED_BACKWARD_RULES, or for a chunked backward too big for the GPU at this shape)."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, initial_state, delta: bool, scale: float, chunked: bool):
        ctx.chunked_bwd = chunked and ("delta" if delta else "hebbian") in CHUNKED_BACKWARD_RULES
        xs = None
        if chunked:
            if delta and ctx.chunked_bwd:  # the chunked backward of the delta rule reuses each chunk's X = (I + A)⁻¹
                B, T, H, _ = q.shape
                xs = torch.empty(B, T, H, CHUNK, dtype=torch.float32, device=q.device)
            o, ht, ckpt, u, ran_chunked = _chunked_or_recurrent(
                q, k, v, g, beta, initial_state, delta, scale, for_backward=True, x_out=xs
            )
            if not ran_chunked:  # the recurrent forward ran instead: the recurrent backward follows it
                ctx.chunked_bwd, xs = False, None
        else:
            o, ht, ckpt, u = _forward(q, k, v, g, beta, initial_state, delta, scale, for_backward=True)
        ctx.save_for_backward(q, k, v, g, beta, ckpt, u, xs)
        ctx.delta, ctx.scale = delta, scale
        ctx.want_dh0 = initial_state is not None and ctx.needs_input_grad[5]
        ctx.h0_dtype = None if initial_state is None else initial_state.dtype
        ctx.set_materialize_grads(False)  # an unused final state then costs nothing in the backward
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        if do is None:  # only the final state was used
            do = torch.zeros_like(ctx.saved_tensors[2])
        saved = ctx.saved_tensors
        grads = None
        if ctx.chunked_bwd and _shape_key("backward", saved[0], saved[2], ctx.delta) not in _TOO_BIG:
            try:
                grads = backward_chunked(saved, do, dht, ctx.delta, ctx.scale, ctx.want_dh0)
            except OutOfResources as err:  # the recurrent backward reads the chunked forward's checkpoints and u
                _too_big("backward", saved[0], saved[2], ctx.delta, err)
        if grads is None:
            grads = _backward(saved[:7], do, dht, ctx.delta, ctx.scale, ctx.want_dh0)
        dq, dk, dv, dg, dbeta, dh0 = grads
        if dh0 is not None:
            dh0 = dh0.to(ctx.h0_dtype)
        return dq, dk, dv, dg, dbeta, dh0, None, None, None


def _check(q: torch.Tensor, rule: str, algorithm: str) -> None:
    """What the kernels need beyond the shapes that sleepcore.ops checks."""
    K = q.shape[-1]
    if rule not in ("delta", "hebbian"):
        raise ValueError(f"unknown rule {rule!r}; valid rules: delta, hebbian")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; valid algorithms: {', '.join(ALGORITHMS)}")
    if K > MAX_K:
        raise ValueError(f"the Triton backend holds the [K, V] state tile in registers and needs K <= {MAX_K}; got {K}")
    if not q.is_cuda and not _interpreting():
        raise ValueError("the Triton backend needs CUDA tensors (or TRITON_INTERPRET=1 set before triton is imported)")


def fast_weight_triton(
    q: torch.Tensor,  # [B, T, H, K]
    k: torch.Tensor,  # [B, T, H, K]
    v: torch.Tensor,  # [B, T, H, V]
    g: torch.Tensor,  # [B, T, H]  log forget gate, <= 0
    beta: torch.Tensor,  # [B, T, H]
    rule: str,
    scale: float,
    initial_state: torch.Tensor | None,  # [B, H, K, V]
    *,
    algorithm: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fast-weight recurrence with naive's semantics -> (o [B, T, H, V] in v's dtype, state [B, H, K, V] fp32).

    algorithm: "chunked" (the chunk-parallel forward of triton_chunk.py), "recurrent" (the fused per-token
    kernel), or "auto": chunked when T >= CHUNKED_MIN_T, recurrent for shorter calls and one-token wake steps.
    The backward follows the forward (chunked: triton_chunk_bwd.py). Differentiable in q, k, v, g, beta and
    initial_state. Without gradients the recurrent forward stores nothing for a backward.
    """
    _check_shapes(q, k, v, g, beta, initial_state)
    _check(q, rule, algorithm)
    inputs = tuple(x.contiguous() for x in (q, k, v, g, beta))
    if initial_state is not None:
        initial_state = initial_state.contiguous()
    delta = rule == "delta"
    chunked = algorithm == "chunked" or (algorithm == "auto" and q.shape[1] >= CHUNKED_MIN_T)
    tracked = [*inputs, initial_state]
    # kernels launch on the current CUDA device: make it the tensors' one (the backward's engine thread does that)
    with torch.cuda.device(q.device) if q.is_cuda else contextlib.nullcontext():
        if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tracked):
            return _FastWeightFn.apply(*inputs, initial_state, delta, float(scale), chunked)
        if chunked:
            o, ht, _, _, _ = _chunked_or_recurrent(*inputs, initial_state, delta, float(scale), for_backward=False)
        else:
            o, ht, _, _ = _forward(*inputs, initial_state, delta, float(scale), for_backward=False)
    return o, ht
