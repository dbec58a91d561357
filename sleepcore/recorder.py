"""Named record points, the way TransformerLens names hook points.

Modules call `rec.record(name, tensor)` at points such as `window.3/pass.2/layer.1/fw.state`. The null recorder
is a constant whose `enabled` is False: modules test it before building names or computing anything extra, so
recording off costs one attribute read per point.
"""

from __future__ import annotations

import fnmatch

import torch

# Every point a model reports, with its shape. w = window, p = pass (wake windows have one pass, pass.1), l = layer.
POINTS = {
    "window.{w}/embed": "[B, L, D] the window's input embeddings (token + position)",
    "window.{w}/pass.{p}/input": "[B, L, D] what enters the block stack on this pass",
    "window.{w}/pass.{p}/layer.{l}/hidden": "[B, L, D] the residual stream after block l",
    "window.{w}/pass.{p}/layer.{l}/attn.probs": "[B, H, L, L] attention probabilities (attn layers)",
    "window.{w}/pass.{p}/layer.{l}/fw.state": "[B, H, K, V] fast-weight state after this pass (fw layers)",
    "window.{w}/pass.{p}/layer.{l}/fw.readout": "[B, L, H, V] fast-weight readout o_t (fw layers)",
    "window.{w}/pass.{p}/layer.{l}/fw.beta": "[B, L, H] write strength (fw layers)",
    "window.{w}/pass.{p}/layer.{l}/fw.g": "[B, L, H] log forget gate (fw layers)",
    "window.{w}/logits": "[B, L, vocab] wake windows only",
}


class Recorder:
    """Keeps a detached copy of every reported tensor whose name matches one of `include` (glob patterns)."""

    enabled = True

    def __init__(self, include: tuple[str, ...] | list[str] = ("*",)):
        self.include = tuple(include)
        self.store: dict[str, torch.Tensor] = {}

    def wants(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.include)

    def record(self, name: str, tensor: torch.Tensor) -> None:
        if not self.wants(name):
            return
        if name in self.store:
            raise RuntimeError(f"record point {name!r} fired twice; each point fires once per run")
        self.store[name] = tensor.detach().to("cpu", copy=True)


class _NullRecorder:
    enabled = False

    def wants(self, name: str) -> bool:
        return False

    def record(self, name: str, tensor: torch.Tensor) -> None:
        pass


NULL = _NullRecorder()
