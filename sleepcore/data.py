"""Examples to tensors."""

from __future__ import annotations

import torch


def collate(examples: list, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """tokens, targets [B, T] long (targets −1 where unscored); loss_mask [B, T] bool."""
    lengths = {len(ex.tokens) for ex in examples}
    if len(lengths) != 1:
        raise ValueError(f"examples in one batch must share a length; got lengths {sorted(lengths)}")
    return {
        "tokens": torch.tensor([ex.tokens for ex in examples], dtype=torch.long, device=device),
        "targets": torch.tensor([ex.targets for ex in examples], dtype=torch.long, device=device),
        "loss_mask": torch.tensor([ex.loss_mask for ex in examples], dtype=torch.bool, device=device),
    }
