"""The sleep loop does what Algorithm 1 of the paper (arXiv 2605.26099) says, and eviction is real."""

import pytest
import torch
import torch.nn.functional as F

from sleepcore.config import ModelConfig, SleepConfig
from sleepcore.model import SleepModel
from sleepcore.recorder import Recorder

V, L, T = 12, 6, 18  # two context windows, then one wake window


def model(layers="attn,fw", passes=1, window=L, **sleep):
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=V,
        d_model=32,
        layers=layers,
        attn_heads=2,
        fw_heads=2,
        head_dim=16,
        max_positions=T,
        conv_size=sleep.pop("conv_size", 0),
    )
    return SleepModel(cfg, SleepConfig(passes=passes, window=window, **sleep)).eval()


def batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, V, (3, T), generator=gen)
    mask = torch.zeros(3, T, dtype=torch.bool)
    mask[:, 2 * L + 2 :] = True
    return tokens, mask


def with_evicted_token_changed(tokens):
    changed = tokens.clone()
    changed[:, 3] = (changed[:, 3] + 1) % V  # inside window 0, which is slept on and evicted
    return changed


def test_attention_only_model_cannot_see_evicted_windows():
    m = model("attn,attn", passes=3)
    tokens, mask = batch()
    a = m(tokens, mask).logits
    b = m(with_evicted_token_changed(tokens), mask).logits
    assert torch.equal(a[mask], b[mask])


@pytest.mark.parametrize("passes", [1, 3])
def test_hybrid_carries_evicted_information_in_fast_weights(passes):
    m = model("attn,fw", passes=passes, **({"feed": "mix", "embed_norm": True} if passes > 1 else {}))
    tokens, mask = batch()
    a = m(tokens, mask).logits
    b = m(with_evicted_token_changed(tokens), mask).logits
    assert (a[mask] - b[mask]).abs().max() > 1e-6


def test_full_attention_reference_sees_everything():
    m = model("attn,attn", window=None)
    tokens, mask = batch()
    a = m(tokens, mask).logits
    b = m(with_evicted_token_changed(tokens), mask).logits
    assert (a[mask] - b[mask]).abs().max() > 1e-6


@pytest.mark.parametrize("passes", [1, 2, 4])
def test_each_context_window_gets_n_passes_and_wake_windows_one(passes):
    m = model(passes=passes)
    tokens, mask = batch()
    rec = Recorder(include=["*/input"])
    m(tokens, mask, rec=rec)
    for w, expected in ((0, passes), (1, passes), (2, 1)):
        assert sorted(k for k in rec.store if k.startswith(f"window.{w}/")) == [
            f"window.{w}/pass.{p}/input" for p in range(1, expected + 1)
        ]


def test_n_equal_one_is_a_plain_pass_over_every_window():
    m = model("attn,fw,attn,fw", passes=1, conv_size=4)
    tokens, mask = batch()
    logits = m(tokens, mask).logits
    state = m.init_state()
    for s, e in m.windows(T):
        h, state = m.run_pass(m.embed(tokens[:, s:e]), state)
    assert torch.equal(m.readout(h), logits[:, 2 * L :])


def test_pass_n_starts_from_pass_n_minus_1_hidden_and_state():
    m = model(passes=3)  # feed="hidden": pass p's input is pass p-1's output, unchanged
    tokens, mask = batch()
    rec = Recorder(include=["window.0/*"])
    m(tokens, mask, rec=rec)
    assert torch.equal(rec.store["window.0/pass.2/input"], rec.store["window.0/pass.1/layer.1/hidden"])
    assert torch.equal(rec.store["window.0/pass.3/input"], rec.store["window.0/pass.2/layer.1/hidden"])
    # the state is not reset between passes: a second write of the window changes it again
    s1, s2 = rec.store["window.0/pass.1/layer.1/fw.state"], rec.store["window.0/pass.2/layer.1/fw.state"]
    assert (s1 - s2).abs().max() > 1e-6


def test_gradients_reach_parameters_through_later_passes():
    m = model(passes=4, feed="mix", pass_embedding=True, norm_between=True, embed_norm=True).train()
    tokens, mask = batch()
    m(tokens, mask).logits[mask].logsumexp(-1).sum().backward()
    # pass_emb[i] and pass_gate[i] enter only pass i + 2: a zero gradient there would mean that pass is cut off
    assert (m.pass_emb.grad.abs().sum(-1) > 0).all()
    assert (m.pass_gate.grad.abs().sum(-1) > 0).all()


def test_checkpointed_passes_give_the_same_loss_and_gradients():
    grads = []
    for ckpt in (False, True):
        m = model(passes=3, feed="mix", embed_norm=True, checkpoint_passes=ckpt).train()
        tokens, mask = batch()
        loss = m(tokens, mask).logits[mask].logsumexp(-1).sum()
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in m.parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.allclose(a, b, atol=1e-6)


def test_recorded_state_after_last_pass_is_the_state_carried_on():
    m = model(passes=3)
    tokens, mask = batch()
    rec = Recorder()
    out = m(tokens, mask, rec=rec)
    assert torch.equal(rec.store["window.2/pass.1/layer.1/fw.state"], out.states[1])
    # window 1 starts from window 0's last-pass state: record points fire once per (window, pass, layer)
    assert sum(1 for k in rec.store if k.endswith("fw.state")) == 3 + 3 + 1


def test_test_time_passes_may_differ_from_trained():
    m = model(passes=2, feed="mix", pass_embedding=True)
    tokens, mask = batch()
    rec = Recorder(include=["window.0/*/input"])
    m(tokens, mask, passes=5, rec=rec)
    assert len(rec.store) == 5


def test_bad_input_gets_a_clear_error():
    m = model(passes=2)
    tokens, mask = batch()
    with pytest.raises(ValueError, match="passes"):
        m(tokens, mask, passes=0)
    with pytest.raises(ValueError, match="longer than the model allows"):
        model(window=None)(torch.zeros(1, T + 1, dtype=torch.long), torch.ones(1, T + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="passes"):
        SleepModel(ModelConfig(vocab_size=V), SleepConfig(passes=0))
    with pytest.raises(ValueError, match="unknown mixer"):
        SleepModel(ModelConfig(vocab_size=V, layers="attn,ssm"), SleepConfig())
    with pytest.raises(ValueError, match="feed"):
        SleepModel(ModelConfig(vocab_size=V), SleepConfig(feed="dream"))
    with pytest.raises(ValueError, match="loop 'dream' is unknown; valid: sleep, wake"):
        SleepModel(ModelConfig(vocab_size=V), SleepConfig(loop="dream"))


# --- the wake-loop control: the N passes run on the windows that are read out ----------------------------------


def wake_loop(passes=3):
    return model("attn,fw,attn,fw", passes=passes, feed="mix", pass_embedding=True, conv_size=4, loop="wake")


def test_wake_loop_runs_n_passes_on_wake_windows_and_one_on_context():
    m = wake_loop(passes=3)
    tokens, mask = batch()
    rec = Recorder(include=["*/input"])
    m(tokens, mask, rec=rec)
    for w, expected in ((0, 1), (1, 1), (2, 3)):
        assert sorted(k for k in rec.store if k.startswith(f"window.{w}/")) == [
            f"window.{w}/pass.{p}/input" for p in range(1, expected + 1)
        ]


def test_wake_loop_equals_its_passes_written_out():
    """Context windows written once; every wake pass from the S the window began with, fed by the previous pass's
    hidden states; read out after the last; S leaving the window is pass 1's."""
    m = wake_loop(passes=3)
    tokens, mask = batch()
    out = m(tokens, mask)
    state = m.init_state()
    for s, e in m.windows(T)[:2]:
        _, state = m.run_pass(m.embed(tokens[:, s:e]), state)
    x = m.embed(tokens[:, 2 * L :])
    h, after = m.run_pass(x, state)
    for p in (2, 3):
        h, _ = m.run_pass(m.pass_input(p, x, h), state)
    assert torch.equal(m.readout(h), out.logits[:, 2 * L :])
    for a, b in zip(after, out.states):
        assert (a is None and b is None) or torch.equal(a, b)


def test_wake_loop_is_causal_inside_the_window_it_answers_from():
    # a pass that began from the S a previous pass left would have read the window's later tokens (its answers)
    m = wake_loop(passes=3)
    tokens, mask = batch()
    changed = tokens.clone()
    changed[:, 2 * L + 4] = (changed[:, 2 * L + 4] + 1) % V
    a, b = m(tokens, mask).logits, m(changed, mask).logits
    assert torch.equal(a[:, : 2 * L + 4], b[:, : 2 * L + 4])
    assert (a[:, 2 * L + 4] - b[:, 2 * L + 4]).abs().max() > 1e-6


def test_wake_loop_at_n_1_is_the_hybrid_and_at_n_gt_1_differs_from_sleep():
    tokens, mask = batch()
    sleep, wake = model(passes=1), model(passes=1, loop="wake")
    assert torch.equal(sleep(tokens, mask).logits, wake(tokens, mask).logits)
    sleep, wake = model(passes=3), model(passes=3, loop="wake")  # the same weights (seeded init), another loop
    assert (sleep(tokens, mask).logits - wake(tokens, mask).logits)[mask].abs().max() > 1e-6
    # the sleep model's context passes rewrite S; the wake loop's context S is the one-pass write
    assert torch.equal(model(passes=1)(tokens, mask).states[1], wake(tokens, mask).states[1])


def test_wake_loop_carries_evicted_information_and_trains_every_pass():
    m = model(passes=3, feed="mix", pass_embedding=True, loop="wake").train()
    tokens, mask = batch()
    a = m(tokens, mask).logits
    assert (a[mask] - m(with_evicted_token_changed(tokens), mask).logits[mask]).abs().max() > 1e-6
    a[mask].logsumexp(-1).sum().backward()
    assert (m.pass_emb.grad.abs().sum(-1) > 0).all()


@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize(("taps", "length"), [(1, 7), (2, 7), (4, 7), (4, 3), (4, 1)])
def test_causal_conv_equals_the_depthwise_conv1d_it_replaces(taps, length, silu):
    torch.manual_seed(1)
    cfg = ModelConfig(vocab_size=V, d_model=32, layers="fw", fw_heads=2, head_dim=16, max_positions=T, conv_size=taps)
    fw = SleepModel(cfg, SleepConfig(passes=1, window=L)).blocks[0].mixer
    with torch.no_grad():
        fw.conv.bias.normal_()  # initialised to zero: a wrong bias gradient would go unseen
    x = torch.randn(3, length, 3 * 2 * 16, requires_grad=True)
    ours = fw._causal_conv(x, silu=silu)
    ref = fw.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)  # nn.Conv1d, padded left by taps - 1
    ref = F.silu(ref) if silu else ref
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(ours.square().sum(), [x, fw.conv.weight, fw.conv.bias])
    refs = torch.autograd.grad(ref.square().sum(), [x, fw.conv.weight, fw.conv.bias])
    for a, b in zip(grads, refs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    if length < 5:
        return
    x2 = x.detach().clone()
    x2[:, 4:] += 1.0  # a later token never reaches an earlier output
    ours = ours.detach()
    assert torch.equal(fw._causal_conv(x2, silu=silu)[:, :4], ours[:, :4])
