"""Token-by-token wake decoding reproduces the model's forward: logits on wake windows and the final state."""

import pytest
import torch

from sleepcore.config import ModelConfig, SleepConfig
from sleepcore.decode import Decoder, KVCache, decode
from sleepcore.model import SleepModel
from sleepcore.presets import INJECT

VOCAB, L, T = 23, 8, 30  # windows of 8, 8, 8 and a last partial one of 6


def make(
    passes: int, conv: int = 0, layers: str = "attn,fw,attn,fw", window: int | None = L, rule: str = "delta", **sleep
) -> SleepModel:
    torch.manual_seed(passes + 10 * conv)
    cfg = ModelConfig(
        vocab_size=VOCAB, d_model=32, layers=layers, attn_heads=2, fw_heads=2, head_dim=16, conv_size=conv,
        max_positions=window or T, rule=rule,
    )  # fmt: skip
    model = SleepModel(cfg, SleepConfig(passes=passes, window=window, **sleep)).eval()
    with torch.no_grad():  # larger weights than at initialisation, so that a wrong cache shows in the logits
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(10.0)
    return model


def sequence(scored_windows: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [2, T] and a loss mask scoring a few positions in the given windows (the others are context)."""
    tokens = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, T, dtype=torch.bool)
    for w in scored_windows:
        mask[:, w * L + 2 : w * L + 5] = True
    return tokens, mask


def wake_positions(model: SleepModel, mask: torch.Tensor) -> torch.Tensor:
    keep = torch.zeros(T, dtype=torch.bool)
    for s, e in model.windows(T):
        keep[s:e] = bool(mask[:, s:e].any())
    return keep


@pytest.mark.parametrize(
    "passes, conv, sleep",
    [
        (1, 0, {}),
        (3, 0, {}),
        (1, 4, {}),
        (3, 4, {}),
        (3, 4, INJECT),
        (2, 0, dict(feed="embed", norm_between=True)),
        (2, 4, dict(rule="hebbian")),
        (3, 4, dict(INJECT, loop="wake")),  # the wake loop: three passes per token read, each with its own caches
        (2, 0, dict(loop="wake")),
    ],
)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_decoding_matches_the_forward_pass(passes, conv, sleep, dtype, tol):
    """fp64 shows the semantics are exact (the forward's logits are stored in fp32); fp32 is what serving runs."""
    model = make(passes, conv, **sleep).to(dtype)
    tokens, mask = sequence(scored_windows=(1, 3))  # context, wake, context, wake (partial)
    ref = model(tokens, mask)
    logits, states = decode(model, tokens, mask)
    keep = wake_positions(model, mask)
    assert keep.sum() == 14 and ref.logits[:, keep].abs().max() > 1.0
    torch.testing.assert_close(logits[:, keep].float(), ref.logits[:, keep], atol=tol, rtol=tol)
    for s, r in zip(states, ref.states):
        assert (s is None) == (r is None)
        if s is not None:
            torch.testing.assert_close(s, r, atol=tol, rtol=tol)


def test_sleep_is_what_makes_them_match():
    """Without sleeping on the context windows the wake logits of an N = 3 model differ: the test can fail."""
    model = make(3, 4, **INJECT)
    tokens, mask = sequence(scored_windows=(1, 3))
    ref = model(tokens, mask).logits
    dec = Decoder(model, batch_size=2)
    logits = torch.zeros_like(ref)
    for s, e in model.windows(T):
        for t in range(s, e):
            logits[:, t] = dec.step(tokens[:, t])
        dec.evict(sleep=False)
    keep = wake_positions(model, mask)
    assert (logits[:, keep] - ref[:, keep]).abs().max() > 1e-2


def test_the_wake_loop_carries_n_caches_and_no_sleep():
    model, hybrid = make(3, 4, **dict(INJECT, loop="wake")), make(3, 4, **INJECT)
    tokens, _ = sequence(scored_windows=())
    dec, one = Decoder(model, batch_size=2), Decoder(hybrid, batch_size=2, passes=1)
    for t in range(5):
        dec.step(tokens[:, t])
        one.step(tokens[:, t])
    assert dec.kv_bytes() == 3 * one.kv_bytes() > 0 and dec.state_bytes() == 3 * one.state_bytes() > 0
    # evicting a context window keeps pass 1's S: what the forward writes, once, on a context window
    ref = model(tokens[:, :L], torch.zeros(2, L, dtype=torch.bool)).states
    for t in range(5, L):
        dec.step(tokens[:, t])
    dec.evict(sleep=True)
    for s, r in zip(dec.state, ref):
        assert (s is None and r is None) or torch.allclose(s, r, atol=1e-5)
    assert all(w.state is dec.state for w in dec.wake)  # every pass starts the next window from it


def test_full_attention_never_evicts():
    model = make(1, layers="attn,attn,attn", window=None)
    tokens, mask = sequence(scored_windows=(0,))
    mask[:, -3:] = True
    ref = model(tokens, mask).logits
    dec = Decoder(model, batch_size=2)
    logits = torch.stack([dec.step(tokens[:, t]) for t in range(T)], dim=1)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-5)
    assert dec.kv[0].length == T and dec.cache_bytes() == 3 * dec.kv[0].nbytes + 2 * T * 8


def test_hard_eviction_keeps_the_cache_bounded():
    model = make(2, 4)
    dec = Decoder(model, batch_size=1)
    tokens = torch.randint(0, VOCAB, (1, 5 * L + 3))
    sizes = []
    for t in range(tokens.shape[1]):
        dec.step(tokens[:, t])
        sizes.append(dec.cache_bytes())
    assert max(c.length for c in dec.kv if c is not None) == 3
    assert max(sizes) == max(sizes[:L])  # never more than one window's keys and values


def test_read_context_equals_stepping_through_context_windows():
    model = make(3, 4, **INJECT)
    tokens = torch.randint(0, VOCAB, (2, 2 * L + 4), generator=torch.Generator().manual_seed(1))
    a, b = Decoder(model, 2), Decoder(model, 2)
    a.read_context(tokens[:, : 2 * L])
    for t in range(2 * L):
        b.step(tokens[:, t])
    for t in range(2 * L, tokens.shape[1]):  # b evicts (and sleeps on) its second window on this first step
        torch.testing.assert_close(a.step(tokens[:, t]), b.step(tokens[:, t]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="window boundary"):
        a.read_context(tokens[:, :L])
    with pytest.raises(ValueError, match="whole windows"):
        Decoder(model, 2).read_context(tokens[:, :5])


def test_kv_cache_grows_and_counts_bytes():
    cache = KVCache(1, 2, 4, capacity=2, device=torch.device("cpu"), dtype=torch.float32)
    for i in range(5):
        k, v = cache.append(torch.full((1, 2, 1, 4), float(i)), torch.full((1, 2, 1, 4), -float(i)))
    assert k.shape == (1, 2, 5, 4) and k[0, 0, :, 0].tolist() == [0, 1, 2, 3, 4] and v[0, 1, 4, 0] == -4
    assert cache.nbytes == 2 * 5 * 2 * 4 * 4
    cache.clear()
    assert cache.nbytes == 0


def test_positions_past_the_model_are_refused():
    model = make(1, layers="attn", window=None)
    dec = Decoder(model)
    for _ in range(T):
        dec.step(torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="max_positions"):
        dec.step(torch.zeros(1, dtype=torch.long))
