"""Chunked fast-weight update in pure PyTorch: the CPU path. The derivation is in README.md.

Within a chunk of C tokens the recurrence is solved in closed form with matrix products and one
unit-lower-triangular solve; only the [K, V] state is carried sequentially from chunk to chunk.
Every decay factor is exp of a difference of cumulative log gates that is <= 0, so nothing overflows.

Forward and backward are written out (`ChunkFastWeight`), in the notation of the Triton kernels' (README.md,
"Chunked backward"), whose PyTorch reference this is: autograd through the forward's ~35 small ops recorded
and replayed about twice as many, several of them masks and copies of C × C matrices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fast_weight_chunk(
    q: torch.Tensor,  # [B, T, H, K]
    k: torch.Tensor,  # [B, T, H, K]
    v: torch.Tensor,  # [B, T, H, V]
    g: torch.Tensor,  # [B, T, H]
    beta: torch.Tensor,  # [B, T, H]
    rule: str,
    scale: float,
    initial_state: torch.Tensor | None,  # [B, H, K, V]
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    B, T, H, K = q.shape
    V = v.shape[-1]
    ct = torch.promote_types(v.dtype, torch.float32)  # fp32, or fp64 for exact tests
    if T == 0:
        S = q.new_zeros(B, H, K, V, dtype=ct) if initial_state is None else initial_state.to(ct)
        return v.new_zeros(B, 0, H, V), S
    C = max(1, min(chunk_size, T))
    o, S = ChunkFastWeight.apply(q, k, v, g, beta, initial_state, rule == "delta", float(scale), C)
    return o.to(v.dtype), S


def _to_chunks(x: torch.Tensor, C: int, ct: torch.dtype) -> torch.Tensor:
    """[B, T, H, *] -> [B, H, n, C, *] in ct, the last chunk padded with zeros. Padding is inert: k = v = q = 0
    writes and reads nothing, g = 0 keeps the state, beta = 0 writes nothing."""
    B, T, H = x.shape[:3]
    n = -(-T // C)
    x = x.to(ct)
    if n * C != T:
        x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, n * C - T))
    x = x.reshape(B, n, C, H, *x.shape[3:])
    x = x.permute(0, 3, 1, 2, 4) if x.dim() == 5 else x.permute(0, 3, 1, 2)
    return x.contiguous()  # one copy here, not one in every product that reads it


def _from_chunks(x: torch.Tensor, T: int) -> torch.Tensor:
    """[B, H, n, C, *] -> [B, T, H, *]: the inverse of _to_chunks, padding dropped."""
    B, H, n, C = x.shape[:4]
    x = x.permute(0, 2, 3, 1, 4) if x.dim() == 5 else x.permute(0, 2, 3, 1)
    return x.reshape(B, n * C, H, *x.shape[4:])[:, :T]


class ChunkFastWeight(torch.autograd.Function):
    """The chunked op with its backward written out. Per chunk (γ = cumsum g inside it, Γ = e^γ, h the state
    entering it, Q̃ = scale·Q, β on the columns, M_tj = e^{γ_t − γ_j} for j ≤ t else 0, b̃_j = β_j e^{γ_C − γ_j}):

        O   = diag(Γ) Q̃ h + P U,   P = M ⊙ Q̃Kᵀ ⊙ β_col
        S_C = e^{γ_C} h + Kᵀ diag(b̃) U
        delta: (I + A) U = V − diag(Γ) K h,  A = M ⊙ KKᵀ ⊙ β_col strictly lower;  hebbian: U = V.

    With X = (I + A)⁻¹ (one triangular solve per chunk, for all chunks at once), U = X V − X diag(Γ) K h.
    """

    @staticmethod
    def forward(ctx, q, k, v, g, beta, initial_state, delta: bool, scale: float, C: int):
        T = q.shape[1]
        ct = torch.promote_types(v.dtype, torch.float32)
        qs = _to_chunks(q, C, ct) * scale  # Q̃ [B, H, n, C, K]
        k, v, g, beta = (_to_chunks(x, C, ct) for x in (k, v, g, beta))
        n = k.shape[2]

        gam = g.cumsum(-1)  # [B, H, n, C]
        Gam = gam.exp()
        causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
        M = (gam[..., :, None] - gam[..., None, :]).masked_fill_(~causal, float("-inf")).exp_()  # [B, H, n, C, C]
        QK = (qs @ k.transpose(-1, -2)).mul_(M)  # M ⊙ Q̃Kᵀ
        P = QK * beta[..., None, :]
        end = (gam[..., -1:] - gam).exp()  # e^{γ_C − γ_j}
        kb = k * (beta * end)[..., None]  # diag(b̃) K
        qG = qs * Gam[..., None]  # diag(Γ) Q̃
        eC = Gam[..., -1, None, None]  # e^{γ_C} [B, H, n, 1, 1]
        if delta:
            KKm = (k @ k.transpose(-1, -2)).mul_(M).tril_(-1)  # M ⊙ KKᵀ, strictly lower
            eye = torch.eye(C, dtype=ct, device=q.device).expand_as(KKm)
            # I + A, A = KKm ⊙ β_col: unitriangular=True reads only A's strict lower triangle, so A is passed as is
            X = torch.linalg.solve_triangular(KKm * beta[..., None, :], eye, upper=False, unitriangular=True)
            kG = k * Gam[..., None]  # diag(Γ) K
            u0, w = X @ v, X @ kG
        else:
            KKm = X = kG = None
            u0, w = v, None

        h = None if initial_state is None else initial_state.to(ct)
        hs, Us, os_ = [], [], []
        for i in range(n):
            if h is None:  # no state yet: every product with h is zero
                U = u0[:, :, i]
                o = P[:, :, i] @ U
                h = kb[:, :, i].transpose(-1, -2) @ U
                hs.append(None)
            else:
                U = u0[:, :, i] if w is None else u0[:, :, i] - w[:, :, i] @ h
                o = qG[:, :, i] @ h + P[:, :, i] @ U
                hs.append(h)
                h = eC[:, :, i] * h + kb[:, :, i].transpose(-1, -2) @ U
            Us.append(U)
            os_.append(o)
        o = torch.stack(os_, 2) if n > 1 else os_[0][:, :, None]
        U = torch.stack(Us, 2) if n > 1 else Us[0][:, :, None]
        ctx.delta, ctx.scale, ctx.T, ctx.dtypes = delta, scale, T, (q.dtype, k.dtype, v.dtype, g.dtype, beta.dtype)
        ctx.state_dtype = None if initial_state is None else initial_state.dtype
        if any(ctx.needs_input_grad):
            Mb = M * beta[..., None, :]  # M ⊙ β_col (β_j on column j)
            ctx.zero_start = hs[0] is None  # the first chunk starts from S = 0: nothing stored for it
            ctx.save_for_backward(qs, k, beta, Gam, Mb, QK, P, end, kb, qG, U, KKm, X, kG, *hs[ctx.zero_start :])
        return _from_chunks(o, T), h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dO, dS):
        qs, k, beta, Gam, Mb, QK, P, end, kb, qG, U, KKm, X, kG, *hs = ctx.saved_tensors
        hs = [None] * ctx.zero_start + hs  # the chunk-start states, None for zero
        delta, T = ctx.delta, ctx.T
        n, C = k.shape[2:4]
        ct = k.dtype
        dO, dS = _to_chunks(dO, C, ct), dS.to(ct)  # autograd passes zeros for a result the loss did not use
        eC = Gam[..., -1, None, None]  # e^{γ_C}
        PtdO = P.transpose(-1, -2) @ dO  # the part of dU that does not wait for the state's gradient

        # The one sequential pass, last chunk first: dS is the gradient for the state leaving chunk i.
        dhs, dUs = [None] * n, [None] * n
        for i in reversed(range(n)):
            dhs[i] = dS
            dU = PtdO[:, :, i] + kb[:, :, i] @ dS
            if delta:
                dU = X[:, :, i].transpose(-1, -2) @ dU  # dR: the gradient through the solve
            dUs[i] = dU
            if i == 0 and hs[0] is None:
                break  # no initial state: no gradient for it
            dS = eC[:, :, i] * dS + qG[:, :, i].transpose(-1, -2) @ dO[:, :, i]
            if delta:
                dS = dS - kG[:, :, i].transpose(-1, -2) @ dU
        dh = torch.stack(dhs, 2)  # [B, H, n, K, V]
        dU = torch.stack(dUs, 2)  # dU (hebbian) or dR (delta) [B, H, n, C, V]
        # the chunk-start states [B, H, n, K, V]; None when the only chunk starts from zero
        h = (
            None
            if n == 1 and hs[0] is None
            else torch.stack([dS.new_zeros(dS.shape) if x is None else x for x in hs], 2)
        )

        # Everything else, all chunks at once. W collects ∂L/∂(M ⊙ Q̃Kᵀ) and, for delta, ∂L/∂(M ⊙ KKᵀ): each entry
        # (t, j) is β_j times them, so it gives dβ_j by column sums and dγ (row sums minus column sums) through β.
        D = dO @ U.transpose(-1, -2)  # dO Uᵀ [B, H, n, C, C]
        Z = D * Mb  # ∂L/∂(Q̃Kᵀ)
        W = D * QK
        UdS = U @ dh.transpose(-1, -2)  # U dS_Cᵀ [B, H, n, C, K]
        dqs = Z @ k
        dk = Z.transpose(-1, -2) @ qs + (beta * end)[..., None] * UdS
        y = end * (k * UdS).sum(-1)  # ∂L/∂b̃_j · e^{γ_C − γ_j}
        dbeta = y.clone()
        y *= beta
        dgam = -y
        dgam[..., -1] += y.sum(-1)
        if h is not None:
            dOh = dO @ h.transpose(-1, -2)  # [B, H, n, C, K]
            dqs += Gam[..., None] * dOh
            dgam += (qG * dOh).sum(-1)
            dgam[..., -1] += Gam[..., -1] * (h * dh).sum((-1, -2))
        if delta:
            dv = dU
            E = (dU @ U.transpose(-1, -2)).neg_().tril_(-1)  # ∂L/∂A on the strict lower triangle
            Fm = E * Mb  # ∂L/∂(KKᵀ), strictly lower
            dk += (Fm + Fm.transpose(-1, -2)) @ k
            W += E.mul_(KKm)
            if h is not None:
                dRh = dU @ h.transpose(-1, -2)
                dk -= Gam[..., None] * dRh
                dgam -= (kG * dRh).sum(-1)
        else:
            dv = dU
        colsum = W.sum(-2)
        dbeta += colsum
        dgam += (W @ beta[..., None])[..., 0] - colsum * beta
        dg = dgam.flip(-1).cumsum(-1).flip(-1)  # γ_s = Σ_{t ≤ s} g_t inside a chunk
        dq = dqs * ctx.scale
        grads = [_from_chunks(x, T) for x in (dq, dk, dv, dg, dbeta)]
        grads = [x.to(dt) for x, dt in zip(grads, ctx.dtypes)]
        ds0 = dS.to(ctx.state_dtype) if ctx.state_dtype is not None else None
        return (*grads, ds0, None, None, None)
