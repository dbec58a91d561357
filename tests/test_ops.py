"""Every backend equals the per-token naive loop on outputs, final state and all gradients."""

import pytest
import torch
import torch.nn.functional as F

from sleepcore.ops import fast_weight


@pytest.fixture(autouse=True)
def poison_uninitialised_memory():
    """Every torch.empty buffer starts as NaN, so an output element a backend forgets to write shows up."""
    import torch.utils.deterministic

    old = (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(old[0])
    torch.utils.deterministic.fill_uninitialized_memory = old[1]


def test_poisoning_is_active():
    assert torch.isnan(torch.empty(4)).all()


def make_inputs(B, T, H, K, V, rule, seed=0, dtype=torch.float32, state=True, strong_decay=False):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen, dtype=dtype)
    k = torch.randn(B, T, H, K, generator=gen, dtype=dtype)
    if rule == "delta":
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    v = torch.randn(B, T, H, V, generator=gen, dtype=dtype)
    low = -5.0 if strong_decay else -1.0
    g = low * torch.rand(B, T, H, generator=gen, dtype=dtype)
    beta = torch.rand(B, T, H, generator=gen, dtype=dtype)
    s0 = torch.randn(B, H, K, V, generator=gen, dtype=dtype) if state else None
    return [q, k, v, g, beta], s0


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def run_with_grads(backend, inputs, s0, rule, **kw):
    leaves = [x.clone().requires_grad_() for x in inputs]
    s = s0.clone().requires_grad_() if s0 is not None else None
    o, S = fast_weight(*leaves, rule=rule, initial_state=s, backend=backend, **kw)
    gen = torch.Generator().manual_seed(99)
    (o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum().add((S * S).sum()).backward()
    grads = [x.grad for x in leaves] + ([s.grad] if s is not None else [])
    return o, S, grads


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("T", [1, 17, 63, 200])
@pytest.mark.parametrize("state", [True, False])
def test_chunk_matches_naive(rule, T, state):
    inputs, s0 = make_inputs(2, T, 2, 16, 32, rule, seed=T, state=state)
    o_ref, s_ref, g_ref = run_with_grads("naive", inputs, s0, rule)
    o, s, g = run_with_grads("chunk", inputs, s0, rule, chunk_size=16)
    assert not torch.isnan(o).any()
    assert rel(o, o_ref) < 1e-4 and rel(s, s_ref) < 1e-4
    for name, a, b in zip(["q", "k", "v", "g", "beta", "s0"], g, g_ref):
        assert rel(a, b) < 1e-4, name


@pytest.mark.parametrize("K,V", [(16, 16), (32, 64), (64, 32)])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_chunk_head_sizes_and_chunk_lengths(K, V, chunk):
    for rule in ("delta", "hebbian"):
        inputs, s0 = make_inputs(1, 50, 3, K, V, rule, seed=K + V, strong_decay=True)
        o_ref, s_ref = fast_weight(*inputs, rule=rule, initial_state=s0, backend="naive")
        o, s = fast_weight(*inputs, rule=rule, initial_state=s0, backend="chunk", chunk_size=chunk)
        assert rel(o, o_ref) < 1e-4 and rel(s, s_ref) < 1e-4
        assert torch.isfinite(o).all()


def test_fp64_agreement_is_exact():
    inputs, s0 = make_inputs(2, 45, 2, 16, 16, "delta", dtype=torch.float64)
    o_ref, s_ref = fast_weight(*inputs, rule="delta", initial_state=s0, backend="naive")
    o, s = fast_weight(*inputs, rule="delta", initial_state=s0, backend="chunk", chunk_size=8)
    assert rel(o, o_ref) < 1e-12 and rel(s, s_ref) < 1e-12


def test_delta_rule_stores_and_recalls_an_association():
    # One write of v under unit key k with beta = 1 from an empty state: reading with q = k returns v exactly.
    K = V = 16
    k = F.normalize(torch.randn(1, 1, 1, K), dim=-1)
    v = torch.randn(1, 1, 1, V)
    o, S = fast_weight(k, k, v, torch.zeros(1, 1, 1), torch.ones(1, 1, 1), rule="delta", scale=1.0, backend="naive")
    assert torch.allclose(o, v, atol=1e-6)
    # Writing a new value under the same key replaces the old one (the delta rule's point), Hebbian adds.
    v2 = torch.randn(1, 1, 1, V)
    o2, _ = fast_weight(
        k, k, v2, torch.zeros(1, 1, 1), torch.ones(1, 1, 1), rule="delta", scale=1.0, initial_state=S, backend="chunk"
    )
    assert torch.allclose(o2, v2, atol=1e-5)
    o3, _ = fast_weight(
        k, k, v2, torch.zeros(1, 1, 1), torch.ones(1, 1, 1), rule="hebbian", scale=1.0, initial_state=S, backend="chunk"
    )
    assert torch.allclose(o3, v + v2, atol=1e-5)


def test_final_state_chains_across_calls():
    inputs, _ = make_inputs(1, 40, 2, 16, 16, "delta")
    o_all, s_all = fast_weight(*inputs, rule="delta", backend="chunk")
    first = [x[:, :25] for x in inputs]
    second = [x[:, 25:] for x in inputs]
    o1, s1 = fast_weight(*first, rule="delta", backend="chunk")
    o2, s2 = fast_weight(*second, rule="delta", initial_state=s1, backend="chunk")
    assert rel(torch.cat([o1, o2], 1), o_all) < 1e-5 and rel(s2, s_all) < 1e-5


def test_bad_input_is_named():
    inputs, _ = make_inputs(1, 5, 2, 16, 16, "delta")
    with pytest.raises(ValueError, match="unknown rule 'oja'.*delta, hebbian"):
        fast_weight(*inputs, rule="oja")
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        fast_weight(*inputs, backend="cuda")
    with pytest.raises(ValueError, match=r"g must be \[B, T, H\]"):
        fast_weight(*inputs[:3], inputs[3][..., :1], inputs[4])
    with pytest.raises(ValueError, match="initial_state must be"):
        fast_weight(*inputs, initial_state=torch.zeros(1, 2, 8, 16))


def test_output_final_state_false_returns_none():
    inputs, _ = make_inputs(1, 5, 1, 16, 16, "hebbian")
    assert fast_weight(*inputs, rule="hebbian", output_final_state=False)[1] is None


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("T,chunk,state", [(7, 3, True), (7, 3, False), (5, 8, True), (5, 8, False), (6, 3, True)])
def test_chunk_backward_passes_gradcheck(rule, T, chunk, state):
    # The chunk backend's backward is written out (ChunkFastWeight): check it against finite differences in fp64,
    # over several chunks, a padded last chunk and a single short chunk, with and without an initial state.
    inputs, s0 = make_inputs(1, T, 2, 3, 4, rule, seed=T, dtype=torch.float64, state=state)
    leaves = [x.clone().requires_grad_() for x in inputs] + ([s0.clone().requires_grad_()] if state else [])

    def op(*xs):
        return fast_weight(
            *xs[:5], rule=rule, initial_state=xs[5] if state else None, backend="chunk", chunk_size=chunk
        )

    assert torch.autograd.gradcheck(op, leaves)


@pytest.mark.parametrize("used", ["o", "state"])
def test_chunk_gradient_when_only_one_result_is_used(used):
    inputs, s0 = make_inputs(1, 20, 2, 8, 8, "delta", seed=3)
    grads = {}
    for backend in ("naive", "chunk"):
        leaves = [x.clone().requires_grad_() for x in inputs]
        s = s0.clone().requires_grad_()
        o, S = fast_weight(*leaves, rule="delta", initial_state=s, backend=backend, chunk_size=8)
        (o if used == "o" else S).sum().backward()
        grads[backend] = [torch.zeros_like(x) if x.grad is None else x.grad for x in leaves + [s]]
    for a, b in zip(grads["chunk"], grads["naive"]):
        assert (a - b).abs().max() <= 1e-4 * b.abs().max().clamp_min(1.0)  # q gets none from the state alone


def test_chunk_gradient_for_some_inputs_only():
    # Only v and the state need gradients (as when q, k, g, beta come from frozen layers).
    inputs, s0 = make_inputs(2, 30, 2, 8, 8, "delta", seed=4)
    out = {}
    for backend in ("naive", "chunk"):
        q, k, v, g, beta = inputs
        v = v.clone().requires_grad_()
        s = s0.clone().requires_grad_()
        o, S = fast_weight(q, k, v, g, beta, rule="delta", initial_state=s, backend=backend, chunk_size=16)
        (o.square().sum() + S.sum()).backward()
        out[backend] = (v.grad, s.grad)
    assert rel(out["chunk"][0], out["naive"][0]) < 1e-4 and rel(out["chunk"][1], out["naive"][1]) < 1e-4


def test_chunk_of_no_tokens_keeps_the_state():
    inputs, s0 = make_inputs(1, 0, 2, 8, 8, "delta")
    o, S = fast_weight(*inputs, rule="delta", initial_state=s0, backend="chunk")
    assert o.shape == (1, 0, 2, 8) and torch.equal(S, s0)
