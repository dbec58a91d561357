"""Chunked fast-weight update in pure PyTorch: the CPU path. The derivation is in README.md.

Within a chunk of C tokens the recurrence is solved in closed form with matrix products and one
unit-lower-triangular solve; only the [K, V] state is carried sequentially from chunk to chunk.
Every decay factor is exp of a difference of cumulative log gates that is <= 0, so nothing overflows.
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
    dtype = v.dtype
    C = max(1, min(chunk_size, T))
    n = -(-T // C)
    pad = n * C - T
    # Padding is inert: k = v = q = 0 writes and reads nothing, g = 0 keeps the state, beta = 0 writes nothing.
    ct = torch.promote_types(dtype, torch.float32)  # fp32, or fp64 for exact tests
    q, k, v, g, beta = (
        F.pad(x.to(ct), (0, 0) * (x.dim() - 2) + (0, pad)) if pad else x.to(ct) for x in (q, k, v, g, beta)
    )
    # to [B, H, n, C, *]
    q = q.reshape(B, n, C, H, K).permute(0, 3, 1, 2, 4) * scale
    k = k.reshape(B, n, C, H, K).permute(0, 3, 1, 2, 4)
    v = v.reshape(B, n, C, H, V).permute(0, 3, 1, 2, 4)
    g = g.reshape(B, n, C, H).permute(0, 3, 1, 2)
    beta = beta.reshape(B, n, C, H).permute(0, 3, 1, 2)

    gam = g.cumsum(-1)  # [B, H, n, C] cumulative log decay inside the chunk
    diff = gam[..., :, None] - gam[..., None, :]  # [B, H, n, C, C]  gamma_t - gamma_j
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    decay = diff.masked_fill(~causal, float("-inf")).exp()  # exp(gamma_t - gamma_j) for j <= t, else 0
    if rule == "delta":
        a = (k @ k.transpose(-1, -2)) * decay.tril(-1)  # [B, H, n, C, C]  strictly lower
        tri = torch.eye(C, device=q.device) + beta[..., :, None] * a
        wv = torch.linalg.solve_triangular(tri, beta[..., None] * v, upper=False, unitriangular=True)
        wk = torch.linalg.solve_triangular(tri, (beta * gam.exp())[..., None] * k, upper=False, unitriangular=True)
    else:
        wv = beta[..., None] * v  # [B, H, n, C, V]
        wk = None
    attn = (q @ k.transpose(-1, -2)) * decay  # [B, H, n, C, C]
    q_dec = q * gam.exp()[..., None]  # [B, H, n, C, K]
    k_dec = k * (gam[..., -1:] - gam).exp()[..., None]  # [B, H, n, C, K]  decay from j to the chunk end
    chunk_decay = gam[..., -1].exp()  # [B, H, n]

    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(q.dtype)
    outs = []
    for i in range(n):
        u = wv[:, :, i] if wk is None else wv[:, :, i] - wk[:, :, i] @ S  # [B, H, C, V]
        outs.append(q_dec[:, :, i] @ S + attn[:, :, i] @ u)
        S = chunk_decay[:, :, i, None, None] * S + k_dec[:, :, i].transpose(-1, -2) @ u
    o = torch.stack(outs, dim=2)  # [B, H, n, C, V]
    o = o.permute(0, 2, 3, 1, 4).reshape(B, n * C, H, V)[:, :T]
    return o.to(dtype), S
