"""The fast-weight op: one signature, several backends (see README.md for the math).

Layout (flash-linear-attention's): q, k [B, T, H, K]; v, o [B, T, H, V]; g, beta [B, T, H]; state [B, H, K, V] fp32.
"""

from __future__ import annotations

import torch

from sleepcore.ops.chunk import fast_weight_chunk
from sleepcore.ops.naive import fast_weight_naive

RULES = ("delta", "hebbian")
BACKENDS = ("auto", "naive", "chunk", "triton")


def fast_weight(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    *,
    rule: str = "delta",
    scale: float | None = None,
    initial_state: torch.Tensor | None = None,
    output_final_state: bool = True,
    backend: str = "auto",
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the gated fast-weight recurrence over T tokens.

    hebbian: S_t = exp(g_t) S_{t-1} + beta_t k_t v_tᵀ
    delta:   S_t = exp(g_t) S_{t-1};  S_t += beta_t k_t (v_t − S_tᵀ k_t)ᵀ
    both:    o_t = S_tᵀ (scale · q_t)

    Returns (o [B, T, H, V] in v's dtype, final state [B, H, K, V] fp32 or None).
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; valid rules: {', '.join(RULES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    _check_shapes(q, k, v, g, beta, initial_state)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if backend == "auto":
        backend = "triton" if q.is_cuda else "chunk"
    if backend == "naive":
        o, S = fast_weight_naive(q, k, v, g, beta, rule, scale, initial_state)
    elif backend == "chunk":
        o, S = fast_weight_chunk(q, k, v, g, beta, rule, scale, initial_state, chunk_size)
    else:
        from sleepcore.ops.triton_fw import fast_weight_triton  # lazy: triton is heavy and optional on the CPU

        o, S = fast_weight_triton(q, k, v, g, beta, rule, scale, initial_state)
    return o, (S if output_final_state else None)


def _check_shapes(q, k, v, g, beta, initial_state) -> None:
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, T, H, K]; got q {tuple(q.shape)}, k {tuple(k.shape)}")
    B, T, H, K = q.shape
    if v.dim() != 4 or v.shape[:3] != (B, T, H):
        raise ValueError(f"v must be [B, T, H, V] = [{B}, {T}, {H}, V]; got {tuple(v.shape)}")
    for name, x in (("g", g), ("beta", beta)):
        if x.shape != (B, T, H):
            raise ValueError(f"{name} must be [B, T, H] = [{B}, {T}, {H}]; got {tuple(x.shape)}")
    if initial_state is not None and initial_state.shape != (B, H, K, v.shape[-1]):
        raise ValueError(
            f"initial_state must be [B, H, K, V] = [{B}, {H}, {K}, {v.shape[-1]}]; got {tuple(initial_state.shape)}"
        )
    named = {"q": q, "k": k, "v": v, "g": g, "beta": beta, "initial_state": initial_state}
    devices = {name: x.device for name, x in named.items() if x is not None}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on {device}" for name, device in devices.items())
        raise ValueError(f"the op's tensors must all be on one device; got {where}")
