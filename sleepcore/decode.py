"""Incremental wake decoding: a SleepModel reads one token at a time, as it would when serving.

Each attention layer keeps a KV cache that is cleared at every window boundary (hard eviction; with window=None
it is never cleared: the full-attention transformer). Each fast-weight layer advances its state S by one step
of the recurrence per token, with a rolling buffer for its causal conv that restarts every window, as in the
model. When a window is evicted the model sleeps on it: N passes of `model.run_pass` over the finished window,
starting from the state S had when the window began (the window goes into S once; the passes rewrite it, which
is what `SleepModel.forward` does on a context window). Only S crosses the boundary.

Nothing here changes the model; the decoder reads its modules' weights. Letters as in sleepcore/model.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sleepcore.layers import Attention, FastWeight
from sleepcore.model import SleepModel, State
from sleepcore.ops import fast_weight


class KVCache:
    """Keys and values of one attention layer: [B, H, capacity, Dh] buffers, the first `length` positions used.

    Preallocated and doubled when full, so appending a token copies one position, not the whole cache.
    """

    def __init__(self, B: int, H: int, Dh: int, capacity: int, device: torch.device, dtype: torch.dtype):
        self.k = torch.zeros(B, H, max(capacity, 1), Dh, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add n positions (k, v [B, H, n, Dh]); return every cached key and value, [B, H, length, Dh] each."""
        n = k.shape[2]
        if self.length + n > self.k.shape[2]:
            self.reserve(max(2 * self.k.shape[2], self.length + n))
        self.k[:, :, self.length : self.length + n] = k
        self.v[:, :, self.length : self.length + n] = v
        self.length += n
        return self.k[:, :, : self.length], self.v[:, :, : self.length]

    def reserve(self, capacity: int) -> None:
        """Grow the buffers to hold capacity positions, keeping what they hold."""
        if capacity <= self.k.shape[2]:
            return
        B, H, _, Dh = self.k.shape
        k, v = self.k.new_zeros(B, H, capacity, Dh), self.v.new_zeros(B, H, capacity, Dh)
        k[:, :, : self.length], v[:, :, : self.length] = self.k[:, :, : self.length], self.v[:, :, : self.length]
        self.k, self.v = k, v

    def clear(self) -> None:
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values held (the used positions, not the spare capacity)."""
        return 2 * self.length * self.k[:, :, 0].numel() * self.k.element_size()


@dataclass
class _Pass:
    """What one wake pass carries from token to token: its KV caches and conv buffers, both cleared every window,
    and its fast-weight state S."""

    kv: list[KVCache | None]
    conv: list[torch.Tensor | None]  # [B, 3·H·K, conv_size] per fw layer
    state: State


class Decoder:
    """Token-by-token wake decoding of a SleepModel, with eviction and sleep at every window boundary.

    `step(token)` reads one token and returns the next-token logits; when the window is full, the next step
    evicts it first, sleeping on it. `evict(sleep=False)` ends a window without sleeping, as the model does on a
    window with scored positions (a wake window: its one pass stands). `decode` feeds a whole sequence this way.

    The wake-loop control (`loop = "wake"`) runs its N passes on every token it reads: pass p keeps its own KV
    caches, conv buffers and S, which starts every window from the S the window began with; pass p + 1 reads pass
    p's hidden state at the same position, and S after pass 1 is what is carried on. It never sleeps: N times the
    per-token work of the hybrid, and N times its KV cache.
    """

    def __init__(self, model: SleepModel, batch_size: int = 1, passes: int | None = None):
        self.model = model
        self.passes = model.sleep.passes if passes is None else passes
        if self.passes < 1:
            raise ValueError(f"passes (N) must be >= 1; got {self.passes}")
        wake_loop = model.sleep.loop == "wake"
        self.sleep_passes = 1 if wake_loop else self.passes  # per context window, when it is evicted
        self.window = model.sleep.window  # L; None: never evict
        self.B = batch_size
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        cfg = model.cfg
        Dh, capacity = cfg.d_model // cfg.attn_heads, self.window or 64

        def new_pass() -> _Pass:
            kv = [
                KVCache(batch_size, cfg.attn_heads, Dh, capacity, self.device, self.dtype) if b.kind == "attn" else None
                for b in model.blocks
            ]
            return _Pass(kv, [None] * len(model.blocks), model.init_state())

        self.wake = [new_pass() for _ in range(self.passes if wake_loop else 1)]  # pass 1 (.. N for the wake loop)
        self.start: State = self.state  # S when the current window began: what sleep starts from
        self.tokens: list[torch.Tensor] = []  # the current window's tokens, [B] each: what sleep reads again
        self.seen = 0  # tokens read so far, every window

    @property
    def state(self) -> State:
        """S after every token read so far (pass 1's: the one that crosses an eviction)."""
        return self.wake[0].state

    @state.setter
    def state(self, value: State) -> None:
        self.wake[0].state = value

    @property
    def kv(self) -> list[KVCache | None]:
        """Pass 1's KV caches, one per block (None for fast-weight blocks)."""
        return self.wake[0].kv

    def kv_bytes(self) -> int:
        return sum(c.nbytes for w in self.wake for c in w.kv if c is not None)

    def state_bytes(self) -> int:
        """Bytes of the fast-weight states and conv buffers of every wake pass."""
        held = [t for w in self.wake for t in w.state + w.conv if t is not None]
        return sum(t.numel() * t.element_size() for t in held)

    @property
    def full(self) -> bool:
        return self.window is not None and len(self.tokens) == self.window

    @torch.no_grad()
    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Read one token (token [B] long) at wake time; return the next-token logits [B, vocab]."""
        if self.full:
            self.evict(sleep=True)
        t = len(self.tokens)
        if t >= self.model.cfg.max_positions:
            raise ValueError(f"position {t} is past the model's max_positions={self.model.cfg.max_positions}")
        e = self.model.tok(token)[:, None] + self.model.pos.weight[t]  # [B, 1, D]
        if self.model.embed_norm is not None:
            e = self.model.embed_norm(e)
        x = None
        for p, wake in enumerate(self.wake, 1):
            x = self.model.pass_input(p, e, x)
            new_state = []
            for i, block in enumerate(self.model.blocks):
                h = block.norm1(x)
                if block.kind == "attn":
                    y, s = self._attend(wake.kv[i], block.mixer, h), None
                else:
                    y, s = self._fast_weight(wake, i, block.mixer, h)
                x = x + y
                x = x + block.mlp(block.norm2(x))
                new_state.append(s)
            wake.state = new_state
        self.tokens.append(token)
        self.seen += 1
        return self.model.readout(x)[:, 0]

    @torch.no_grad()
    def evict(self, sleep: bool = True) -> None:
        """End the current window: sleep on it (N passes) if sleep, then clear the KV caches and conv buffers.

        With N = 1 the one pass is the wake pass the tokens already made, so S stays as it is.
        """
        if sleep and self.tokens and self.sleep_passes > 1:
            self.state = self.sleep_on(torch.stack(self.tokens, dim=1), self.start)
        self._reset_window()

    @torch.no_grad()
    def sleep_on(self, tokens: torch.Tensor, state: State) -> State:
        """N passes over one window (tokens [B, n]) from state (one for the wake loop); the state after the last."""
        x, h = self.model.embed(tokens), None  # [B, n, D]
        for p in range(1, self.sleep_passes + 1):
            h, state = self.model.run_pass(self.model.pass_input(p, x, h), state)
        return state

    @torch.no_grad()
    def read_context(self, tokens: torch.Tensor) -> None:
        """Read whole context windows at once (prefill): tokens [B, k·L], at a window boundary; sleeps on each."""
        if self.window is None:
            raise ValueError("a model without eviction never sleeps; feed its context with step()")
        if self.tokens and not self.full:
            raise ValueError(f"read_context starts at a window boundary; {len(self.tokens)} tokens are pending")
        if tokens.shape[1] % self.window:
            raise ValueError(f"read_context takes whole windows of {self.window}; got {tokens.shape[1]} tokens")
        if self.full:
            self.evict(sleep=True)
        for s in range(0, tokens.shape[1], self.window):
            self.state = self.sleep_on(tokens[:, s : s + self.window], self.state)
        self._reset_window()
        self.seen += tokens.shape[1]

    def cache_bytes(self) -> int:
        """Bytes the decoder carries between tokens: KV caches, fast-weight states, conv buffers, window tokens."""
        return self.state_bytes() + self.kv_bytes() + sum(t.numel() * 8 for t in self.tokens)

    # --- one token through one mixer ----------------------------------------------------------------------
    def _attend(self, cache: KVCache, mixer: Attention, h: torch.Tensor) -> torch.Tensor:
        """h [B, 1, D] -> attention output [B, 1, D] over the window's cached keys and values plus this token's."""
        B, _, D = h.shape
        q, k, v = mixer.qkv(h).view(B, 1, 3, mixer.heads, D // mixer.heads).permute(2, 0, 3, 1, 4)  # [B, H, 1, Dh]
        keys, values = cache.append(k, v)
        y = F.scaled_dot_product_attention(q, keys, values)  # no mask: every cached position precedes this token
        return mixer.out(y.transpose(1, 2).reshape(B, 1, D))

    def _fast_weight(
        self, wake: _Pass, i: int, mixer: FastWeight, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h [B, 1, D] -> (y [B, 1, D], block i's S after this token): FastWeight at T = 1, from `wake`'s S and conv."""
        state = wake.state[i]  # [B, H, K, V] or None
        cfg = mixer.cfg
        B, H, K = h.shape[0], cfg.fw_heads, cfg.head_dim
        q, k, v = mixer.q(h), mixer.k(h), mixer.v(h)  # [B, 1, H·K]
        if cfg.conv_size:
            qkv = self._conv_step(wake, i, mixer.conv, torch.cat([q, k, v], -1)[:, 0])  # [B, 3·H·K]
            q, k, v = F.silu(qkv)[:, None].split(H * K, dim=-1)
        q, k, v = (t.reshape(B, 1, H, K) for t in (q, k, v))
        if cfg.rule == "delta":
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        beta = torch.sigmoid(mixer.beta(h))  # [B, 1, H]
        g = -mixer.A_log.exp() * F.softplus(mixer.alpha(h) + mixer.dt_bias)  # [B, 1, H]
        # one token is one step of the recurrence: the naive backend is that step, with nothing to chunk
        o, new_state = fast_weight(q, k, v, g, beta, rule=cfg.rule, initial_state=state, backend="naive")
        y = mixer.out_norm(o) * F.silu(mixer.gate(h).view(B, 1, H, K))
        return mixer.out(y.reshape(B, 1, H * K)), new_state

    def _conv_step(self, wake: _Pass, i: int, conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        """The causal depthwise conv at the newest position: x [B, C] -> [B, C], from a rolling buffer [B, C, k].

        The buffer starts at zeros each window, as the conv's left padding does in the model.
        """
        buf = wake.conv[i]
        if buf is None:
            buf = x.new_zeros(*x.shape, conv.kernel_size[0])
        buf = torch.cat([buf[..., 1:], x[..., None]], dim=-1)
        wake.conv[i] = buf
        return (buf * conv.weight[:, 0]).sum(-1) + conv.bias

    def _reset_window(self) -> None:
        """A new window: empty caches and conv buffers; every wake pass starts from the S the window begins with."""
        for wake in self.wake:
            for c in wake.kv:
                if c is not None:
                    c.clear()
            wake.conv = [None] * len(self.model.blocks)
            wake.state = self.state
        self.tokens = []
        self.start = self.state


@torch.no_grad()
def decode(
    model: SleepModel, tokens: torch.Tensor, loss_mask: torch.Tensor, passes: int | None = None
) -> tuple[torch.Tensor, State]:
    """Feed tokens [B, T] one at a time; (logits [B, T, vocab], final state) as `model(tokens, loss_mask)` gives.

    A window with no scored position is context: the decoder sleeps on it when it is evicted. Logits are the wake
    readout at every position; the model's forward reads out only the windows with scored positions.
    """
    B, T = tokens.shape
    dec = Decoder(model, B, passes)
    logits = torch.zeros(B, T, model.cfg.vocab_size, device=tokens.device, dtype=dec.dtype)
    for s, e in model.windows(T):
        for t in range(s, e):
            logits[:, t] = dec.step(tokens[:, t])
        dec.evict(sleep=not bool(loss_mask[:, s:e].any()))
    return logits, dec.state
