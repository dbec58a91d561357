"""The sleep model: a hybrid of attention and fast-weight blocks under hard KV eviction, with sleep.

Glossary of letters in shape comments:
    B batch · T sequence length · L window length · D d_model · H heads · K, V fast-weight key / value size
    N sleep passes · vocab vocabulary size

The sequence is cut into windows of L tokens. Attention sees only the current window (its KV cache is cleared
at every window boundary); only the fast-weight state S crosses a boundary. A window with no scored position
is context: the model sleeps on it, running N passes through the block stack, each pass starting from the
previous pass's hidden states and S, before the window is evicted. A window with scored positions gets one
ordinary (wake) pass. N = 1 is exactly the attention–SSM hybrid under hard eviction (arXiv 2605.26099, Algorithm 1).

The wake-loop control (`SleepConfig.loop = "wake"`) spends the same N passes per window at prediction time
instead: context windows are written into S once, and every window that is read out runs N passes, each from the
S its window began with (a pass that started from a later S would have read the window's own later tokens,
answers included), pass n+1 fed by pass n's hidden states, read out after the last. S leaving the window is pass
1's, so what crosses an eviction is exactly what the N = 1 hybrid writes; the extra passes only read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from sleepcore.config import ModelConfig, SleepConfig
from sleepcore.layers import Block
from sleepcore.recorder import NULL

State = list[torch.Tensor | None]  # one entry per block: [B, H, K, V] for fast-weight blocks, None for attention


@dataclass
class SleepOutput:
    logits: torch.Tensor  # [B, T, vocab]; zero on context windows, which are never read out
    states: State  # fast-weight state after the last window


class SleepModel(nn.Module):
    def __init__(self, model: ModelConfig, sleep: SleepConfig):
        super().__init__()
        model.validate()
        sleep.validate()
        self.cfg, self.sleep = model, sleep
        D = model.d_model
        self.tok = nn.Embedding(model.vocab_size, D)
        self.pos = nn.Embedding(model.max_positions, D)
        self.blocks = nn.ModuleList(Block(model, m) for m in model.mixers)
        self.norm = nn.RMSNorm(D, eps=model.norm_eps)
        self.head = nn.Linear(D, model.vocab_size, bias=False)
        self.embed_norm = nn.RMSNorm(D, eps=model.norm_eps) if sleep.embed_norm else None
        self.between_norm = nn.RMSNorm(D, eps=model.norm_eps) if sleep.norm_between else None
        extra = max(sleep.passes - 1, 0)  # parameters for passes 2..N
        self.pass_emb = nn.Parameter(0.3 * torch.randn(extra, D)) if sleep.pass_embedding and extra else None
        self.pass_gate = nn.Parameter(torch.ones(extra, D)) if sleep.feed == "mix" and extra else None
        self.apply(_init)

    # --- pieces -------------------------------------------------------------------------------------------
    def windows(self, T: int) -> list[tuple[int, int]]:
        L = self.sleep.window or T
        return [(s, min(s + L, T)) for s in range(0, T, L)]

    def init_state(self) -> State:
        return [None] * len(self.blocks)

    def embed(self, tokens: torch.Tensor, embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Token + position embeddings of one window. tokens [B, L] (or embeds [B, L, D] replacing the token part)."""
        L = tokens.shape[1]
        x = (self.tok(tokens) if embeds is None else embeds) + self.pos(torch.arange(L, device=tokens.device))
        return self.embed_norm(x) if self.embed_norm is not None else x

    def pass_input(self, p: int, e: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        """What enters the block stack on pass p (1-based) of a window with embeddings e; h is pass p−1's output.

        Passes beyond the trained N (test-time N larger than trained) reuse the last trained pass's parameters.
        """
        if p == 1:
            return e
        feed = self.sleep.feed
        prev = self.between_norm(h) if self.between_norm is not None else h
        i = min(p, self.sleep.passes) - 2
        if feed == "hidden":
            x = prev
        elif feed == "embed":
            x = e
        else:
            x = e + (self.pass_gate[i] * prev if self.pass_gate is not None else prev)
        if self.pass_emb is not None:
            x = x + self.pass_emb[i]
        return x

    def run_pass(self, x: torch.Tensor, state: State, rec=NULL, where: str = "") -> tuple[torch.Tensor, State]:
        """One pass of the block stack over one window. x [B, L, D] -> (h [B, L, D], new state)."""
        if self.sleep.checkpoint_passes and torch.is_grad_enabled() and not rec.enabled:
            return checkpoint(self._run_pass, x, state, NULL, where, use_reentrant=False)
        return self._run_pass(x, state, rec, where)

    def _run_pass(self, x, state, rec, where):
        if rec.enabled:
            rec.record(f"{where}/input", x)
        new_state = []
        for i, (block, s) in enumerate(zip(self.blocks, state)):
            name = f"{where}/layer.{i}"
            x, s = block(x, s, rec, name)
            new_state.append(s)
            if rec.enabled:
                rec.record(f"{name}/hidden", x)
        return x, new_state

    def wake_passes(self, x: torch.Tensor, state: State, n: int, rec=NULL, w: int = 0) -> tuple[torch.Tensor, State]:
        """n passes over a window that is read out, each from `state` (the S the window began with), pass p + 1 fed
        by pass p's hidden states. x [B, L, D] -> (the last pass's h [B, L, D], the state after pass 1)."""
        h, after = self.run_pass(x, state, rec, f"window.{w}/pass.1")
        for p in range(2, n + 1):
            h, _ = self.run_pass(self.pass_input(p, x, h), state, rec, f"window.{w}/pass.{p}")
        return h, after

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(h))

    # --- the sleep loop -----------------------------------------------------------------------------------
    def forward(
        self,
        tokens: torch.Tensor,  # [B, T]
        loss_mask: torch.Tensor,  # [B, T] bool: a window with no scored position is context and is slept on
        *,
        passes: int | None = None,  # N at test time; defaults to the trained N
        embeds: torch.Tensor | None = None,  # [B, T, D] token embeddings to use instead of looking tokens up
        rec=NULL,
    ) -> SleepOutput:
        B, T = tokens.shape
        N = self.sleep.passes if passes is None else passes
        if N < 1:
            raise ValueError(f"passes (N) must be >= 1; got {N}")
        longest = self.sleep.window or T
        if min(longest, T) > self.cfg.max_positions:
            raise ValueError(
                f"a window of {min(longest, T)} tokens is longer than the model allows "
                f"(max_positions={self.cfg.max_positions})"
            )
        if loss_mask.shape != tokens.shape:
            raise ValueError(f"loss_mask {tuple(loss_mask.shape)} must have the shape of tokens {tuple(tokens.shape)}")
        logits = torch.zeros(B, T, self.cfg.vocab_size, device=tokens.device)
        state = self.init_state()
        for w, (s, e) in enumerate(self.windows(T)):
            x = self.embed(tokens[:, s:e], None if embeds is None else embeds[:, s:e])
            if rec.enabled:
                rec.record(f"window.{w}/embed", x)
            if bool(loss_mask[:, s:e].any()):  # wake: one ordinary pass (N for the wake loop), read out
                h, state = self.wake_passes(x, state, N if self.sleep.loop == "wake" else 1, rec, w)
                out = self.readout(h)
                logits[:, s:e] = out
                if rec.enabled:
                    rec.record(f"window.{w}/logits", out)
            else:  # sleep: N passes rewrite S; then h and the window's KV are discarded
                h = None
                for p in range(1, (N if self.sleep.loop == "sleep" else 1) + 1):
                    h, state = self.run_pass(self.pass_input(p, x, h), state, rec, f"window.{w}/pass.{p}")
        return SleepOutput(logits, state)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)
