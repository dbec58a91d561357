"""The blocks of the hybrid: causal attention over one window, the fast-weight mixer, and the MLP.

Layout: [B, T, D] for hidden states; heads split as [B, T, H, Dh]. Fast-weight state [B, H, K, V], fp32.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from sleepcore.config import ModelConfig
from sleepcore.ops import fast_weight
from sleepcore.recorder import NULL


class Attention(nn.Module):
    """Causal softmax attention over the tokens it is given (one window: its KV is built and dropped per call)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.attn_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, rec=NULL, where: str = "") -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 × [B, H, T, Dh]
        if rec.enabled and rec.wants(f"{where}/attn.probs"):
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            probs = scores.masked_fill(~causal, float("-inf")).softmax(-1)  # [B, H, T, T]
            rec.record(f"{where}/attn.probs", probs)
            y = probs @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class FastWeight(nn.Module):
    """The fast-weight (SSM) mixer: S carries what the window wrote; o_t = S_tᵀ q_t is read back.

    beta = sigmoid(W_β x) is the write strength; g = −exp(A_log) · softplus(W_α x + dt_bias) is the log forget
    gate in the Mamba2 style (g <= 0, so the state decays and never grows through the gate).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        H, K = cfg.fw_heads, cfg.head_dim
        self.cfg = cfg
        self.q = nn.Linear(cfg.d_model, H * K, bias=False)
        self.k = nn.Linear(cfg.d_model, H * K, bias=False)
        self.v = nn.Linear(cfg.d_model, H * K, bias=False)
        self.beta = nn.Linear(cfg.d_model, H, bias=True)
        self.alpha = nn.Linear(cfg.d_model, H, bias=False)
        self.gate = nn.Linear(cfg.d_model, H * K, bias=False)
        self.out = nn.Linear(H * K, cfg.d_model, bias=False)
        self.out_norm = nn.RMSNorm(K, eps=cfg.norm_eps)
        # Decay rates spread over heads, as in Mamba2: A in [1, 16], dt in [1e-3, 1e-1] at initialisation.
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, H)))
        dt = torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), H))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        if cfg.conv_size:
            self.conv = nn.Conv1d(3 * H * K, 3 * H * K, cfg.conv_size, groups=3 * H * K, padding=cfg.conv_size - 1)

    def _causal_conv(self, x: torch.Tensor, silu: bool = False) -> torch.Tensor:
        """`self.conv` (depthwise, causal) on x [B, T, C], then SiLU if `silu`: y_t = b + Σ_j w_j x_{t-j}.

        Equal to `self.conv` on the transposed input (tested), through `CausalConv`'s hand-written backward.
        """
        return CausalConv.apply(x, self.conv.weight[:, 0, :], self.conv.bias, silu)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None, rec=NULL, where: str = ""):
        """x [B, T, D], state [B, H, K, V] or None -> (y [B, T, D], new state [B, H, K, V])."""
        B, T, _ = x.shape
        H, K = self.cfg.fw_heads, self.cfg.head_dim
        q, k, v = self.q(x), self.k(x), self.v(x)
        if self.cfg.conv_size:
            # causal within the call: the conv restarts every window, since only S crosses an eviction
            q, k, v = self._causal_conv(torch.cat([q, k, v], -1), silu=True).split(H * K, dim=-1)
        q, k, v = (t.view(B, T, H, K) for t in (q, k, v))
        if self.cfg.rule == "delta":  # the delta rule is only stable with unit-norm keys
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = torch.sigmoid(self.beta(x))  # [B, T, H]
        g = -self.A_log.exp() * F.softplus(self.alpha(x) + self.dt_bias)  # [B, T, H]
        o, new_state = fast_weight(
            q,
            k,
            v,
            g,
            beta,
            rule=self.cfg.rule,
            initial_state=state,
            backend=self.cfg.backend,
            chunk_size=self.cfg.chunk_size,
        )
        if rec.enabled:
            rec.record(f"{where}/fw.state", new_state)
            rec.record(f"{where}/fw.readout", o)
            rec.record(f"{where}/fw.beta", beta)
            rec.record(f"{where}/fw.g", g)
        y = self.out_norm(o) * F.silu(self.gate(x).view(B, T, H, K))
        return self.out(y.reshape(B, T, H * K)), new_state


class CausalConv(torch.autograd.Function):
    """Causal depthwise conv over time, optionally followed by SiLU, with a hand-written backward.

    x [B, T, C], w [C, taps] (tap taps−1 multiplies x_t, tap 0 multiplies x_{t−taps+1}), b [C]:
    a_t = b + Σ_{j<taps} w[:, taps−1−j] · x_{t−j} (x_{<0} = 0), y = silu(a) or a.

    Autograd through shifted slices of a padded copy allocates a zeroed padded gradient per tap and sums them;
    here each tap is one in-place multiply-add on the overlapping rows, forward and backward, and SiLU's backward
    is fused in. (mkldnn's depthwise conv backward had taken a quarter of a CPU training step at the mini shapes.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, silu: bool) -> torch.Tensor:
        T, taps = x.shape[1], w.shape[1]
        w = w.flip(1).t().contiguous()  # [taps, C], row j multiplies x_{t−j}: contiguous rows broadcast ~5x faster
        a = torch.addcmul(b, x, w[0])
        for j in range(1, min(taps, T)):
            a[:, j:].addcmul_(x[:, : T - j], w[j])
        ctx.silu = silu
        ctx.save_for_backward(x, w, a if silu else None)
        return F.silu(a) if silu else a

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        x, w, a = ctx.saved_tensors  # w as saved: [taps, C], row j for lag j
        T, taps = x.shape[1], w.shape[0]
        ga = torch.ops.aten.silu_backward(gy, a) if ctx.silu else gy
        gx = ga * w[0]
        gw = torch.zeros_like(w)
        gw[0] = (ga * x).sum((0, 1))
        for j in range(1, min(taps, T)):
            gx[:, : T - j].addcmul_(ga[:, j:], w[j])
            gw[j] = (ga[:, j:] * x[:, : T - j]).sum((0, 1))
        return gx, gw.t().flip(1), ga.sum((0, 1)), None


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = int(cfg.mlp_ratio * cfg.d_model)
        self.up = nn.Linear(cfg.d_model, hidden, bias=False)
        self.down = nn.Linear(hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm residual block: x + mixer(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig, mixer: str):
        super().__init__()
        self.kind = mixer
        self.norm1 = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mixer = Attention(cfg) if mixer == "attn" else FastWeight(cfg)
        self.norm2 = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None, rec=NULL, where: str = ""):
        if self.kind == "attn":
            x = x + self.mixer(self.norm1(x), rec, where)
        else:
            y, state = self.mixer(self.norm1(x), state, rec, where)
            x = x + y
        return x + self.mlp(self.norm2(x)), state
