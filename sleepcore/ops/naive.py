"""Per-token fast-weight recurrence in fp32: the ground truth every other backend is tested against."""

from __future__ import annotations

import torch


def fast_weight_naive(
    q: torch.Tensor,  # [B, T, H, K]
    k: torch.Tensor,  # [B, T, H, K]
    v: torch.Tensor,  # [B, T, H, V]
    g: torch.Tensor,  # [B, T, H]  log forget gate, <= 0
    beta: torch.Tensor,  # [B, T, H]
    rule: str,
    scale: float,
    initial_state: torch.Tensor | None,  # [B, H, K, V]
) -> tuple[torch.Tensor, torch.Tensor]:
    B, T, H, K = q.shape
    V = v.shape[-1]
    ct = torch.promote_types(v.dtype, torch.float32)  # fp32, or fp64 for exact tests
    q, k, v, g, beta = (x.to(ct) for x in (q, k, v, g, beta))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(q.dtype)
    outs = []
    for t in range(T):
        S = S * g[:, t].exp()[..., None, None]
        k_t, v_t = k[:, t], v[:, t]  # [B, H, K], [B, H, V]
        if rule == "delta":
            v_t = v_t - torch.einsum("bhkv,bhk->bhv", S, k_t)
        S = S + beta[:, t][..., None, None] * k_t[..., :, None] * v_t[..., None, :]
        outs.append(torch.einsum("bhkv,bhk->bhv", S, q[:, t] * scale))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V)
    return o, S
