"""The Triton backend equals the per-token naive loop on outputs, final state and every gradient.

Both algorithms are tested (`algorithm=`): the recurrent forward and backward, and the chunked forward and
backward (and the chunked forward followed by the recurrent backward, the fallback). Without CUDA the kernels run
in Triton's interpreter, which is slow (about 15 ms per token and program for the recurrent forward and backward
together; the chunked forward costs about 0.3 s per chunk and program for the delta rule's triangular inverse,
the chunked backward much less), so the CPU tests keep B·H small and cover lengths, head sizes, V-blocks and
several (batch, head) pairs in separate cases rather than their full product.
"""

import functools
import os
import subprocess
import sys
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # the interpreter must be chosen before triton is first imported
pytest.importorskip("triton", reason="the Triton backend needs the triton package")

from triton.runtime.errors import OutOfResources  # noqa: E402

from sleepcore.ops import fast_weight, triton_chunk, triton_fw  # noqa: E402
from sleepcore.ops.naive import fast_weight_naive  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
NAMES = ("o", "final state", "dq", "dk", "dv", "dg", "dbeta", "dh0")
ALGORITHMS = ("recurrent", "chunked")
gpu_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def poison_uninitialised_memory():
    """Every torch.empty buffer starts as NaN, so an element a kernel forgets to write shows up."""
    import torch.utils.deterministic

    old = (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn_only: cuBLAS in the reference may not comply
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(old[0])
    torch.utils.deterministic.fill_uninitialized_memory = old[1]


def make_inputs(
    B: int, T: int, H: int, K: int, V: int, rule: str, *, state: bool, seed: int = 0, low: float = -5.0
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """[q, k, v, g, beta] in fp32 on DEVICE, and an initial state [B, H, K, V] or None; g uniform in [low, 0]."""
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, B, T, H, K, generator=gen)
    if rule == "delta":  # as the fast-weight mixer feeds it: the delta rule is stable for unit keys
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    v = torch.randn(B, T, H, V, generator=gen)
    g = low * torch.rand(B, T, H, generator=gen)
    beta = torch.rand(B, T, H, generator=gen)
    s0 = torch.randn(B, H, K, V, generator=gen) if state else None
    inputs = [x.to(DEVICE) for x in (q, k, v, g, beta)]
    return inputs, None if s0 is None else s0.to(DEVICE)


def run(
    fn: Callable, inputs: list[torch.Tensor], s0: torch.Tensor | None, rule: str, dtype: torch.dtype | None = None
) -> list[torch.Tensor]:
    """[o, final state, dq, dk, dv, dg, dbeta, (dh0)] of a loss that weighs both outputs at random."""
    leaves = [x.detach().to(dtype or x.dtype, copy=True).requires_grad_() for x in inputs]
    s = None if s0 is None else s0.clone().requires_grad_()
    o, S = fn(*leaves, rule, leaves[0].shape[-1] ** -0.5, s)
    gen = torch.Generator().manual_seed(1)
    w_o, w_S = (torch.randn(x.shape, generator=gen).to(DEVICE) for x in (o, S))
    loss = (o.float() * w_o).sum() + (S * w_S).sum()
    grads = torch.autograd.grad(loss, leaves + ([s] if s is not None else []))
    return [o, S, *grads]


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max |b|; NaN anywhere in a makes it NaN, which fails every comparison."""
    return ((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-30)).item()


def rms_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def triton_with(algorithm: str) -> Callable:
    """fast_weight_triton with its forward chosen: "recurrent", "chunked" or "auto"."""
    return functools.partial(triton_fw.fast_weight_triton, algorithm=algorithm)


def assert_matches_naive(
    inputs: list[torch.Tensor], s0: torch.Tensor | None, rule: str, algorithm: str = "auto", tol: float = 1e-4
) -> None:
    ref = run(fast_weight_naive, inputs, s0, rule)
    out = run(triton_with(algorithm), inputs, s0, rule)
    errors = {name: max_rel(a, b) for name, a, b in zip(NAMES, out, ref)}
    assert all(e < tol for e in errors.values()), errors


def test_poisoning_is_active():
    assert torch.isnan(torch.empty(4, device=DEVICE)).all()


def test_dot_precision_is_ieee_for_fp32_and_fp64_and_tf32_for_16_bit_inputs():
    assert [triton_chunk.precision(d) for d in (torch.float64, torch.float32, torch.bfloat16, torch.float16)] == [
        "ieee",
        "ieee",
        "tf32",
        "tf32",
    ]


@pytest.mark.parametrize("setting, tuned", [(None, True), ("1", True), ("0", False)])
def test_autotune_is_on_by_default_on_a_gpu_and_off_with_the_setting(setting, tuned):
    """Outside the interpreter every chunked kernel is autotuned unless SLEEPCORE_TRITON_AUTOTUNE=0 is set (fixed
    configs: what the GPU test run uses, so that it compiles each kernel once); importing needs no GPU."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "SLEEPCORE_TRITON_AUTOTUNE")}
    if setting is not None:
        env["SLEEPCORE_TRITON_AUTOTUNE"] = setting
    code = (
        "from triton.runtime.autotuner import Autotuner\n"
        "from sleepcore.ops import triton_chunk as tc, triton_chunk_bwd as tb\n"
        "kernels = (tc._prep_kernel, tc._state_kernel, tc._output_kernel, tb._dstate_kernel, tb._grad_kernel)\n"
        "print(tc.AUTOTUNE, sorted({isinstance(k, Autotuner) for k in kernels}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(tuned), f"[{tuned}]"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("T", [1, 17, 63, 64, 65, 200])
def test_lengths(rule, T, algorithm):
    """Lengths around the 64-token chunk (and checkpoint stride), with an initial state (several heads: below)."""
    inputs, s0 = make_inputs(1, T, 1, 32, 32, rule, state=True, seed=T)
    assert_matches_naive(inputs, s0, rule, algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("K, V", [(16, 16), (16, 64), (64, 32), (64, 64)])
def test_head_sizes_without_initial_state(rule, K, V, algorithm):
    """Two chunks, the second one short: the chunk-start states of a K ≠ V state are laid out right."""
    inputs, s0 = make_inputs(1, 70, 1, K, V, rule, state=False, seed=K + V)
    assert_matches_naive(inputs, s0, rule, algorithm)


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_several_v_blocks_and_padded_tiles(rule, monkeypatch):
    """On a GPU V splits into blocks whose partial dq, dk, dg, dbeta add up; K = 12 and V = 40 pad the tiles."""
    monkeypatch.setattr(triton_fw, "_block_v", lambda K, V, *_: 16)  # three blocks, the last one partial
    inputs, s0 = make_inputs(1, 17, 2, 12, 40, rule, state=True, seed=3)
    assert_matches_naive(inputs, s0, rule, "recurrent")


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_chunked_v_blocks_and_padded_tiles(rule, monkeypatch):
    """The chunked kernels' V-blocks (the autotuner's BV on a GPU) and K = 12, V = 40 padded to 16 and 64."""
    monkeypatch.setattr(triton_chunk, "_fixed_block_v", lambda V, *_: 16)  # three blocks, the last one partial
    monkeypatch.setattr(triton_fw, "_block_v", lambda K, V, *_: 16)
    inputs, s0 = make_inputs(1, 65, 2, 12, 40, rule, state=True, seed=3)
    assert_matches_naive(inputs, s0, rule, "chunked")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_checkpoints_of_several_sequences_and_heads(algorithm):
    """Two chunks for each of B·H = 4 (batch, head) pairs: the checkpoints of one must not be read by another."""
    inputs, s0 = make_inputs(2, 70, 2, 16, 16, "delta", state=True, seed=5)
    assert_matches_naive(inputs, s0, "delta", algorithm)


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_chunked_strong_decay_stays_finite(rule):
    """Every gate e^-5: γ falls to −320 inside a chunk, where e^γ underflows; no exponent may be positive, in the
    forward or the chunked backward (three chunks, the last one short)."""
    inputs, s0 = make_inputs(1, 150, 1, 16, 16, rule, state=True, seed=17)
    inputs[3] = torch.full_like(inputs[3], -5.0)
    out = run(triton_with("chunked"), inputs, s0, rule)
    assert all(torch.isfinite(x).all() for x in out)
    assert_matches_naive(inputs, s0, rule, "chunked")


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("T", [64, 65, 130, 200])  # one to four chunks, the last one full, short or nearly full
@pytest.mark.parametrize("K, V, state", [(12, 40, True), (32, 16, False)])
def test_chunked_backward(rule, T, K, V, state, monkeypatch):
    """The chunked backward (the one the chunked forward takes) on every gradient, with padded tiles (K = 12,
    V = 40) and without an initial state; two (batch, head) pairs so that chunks of one never read another's."""
    calls = []
    for name in ("backward_chunked", "_backward"):
        backward = getattr(triton_fw, name)
        monkeypatch.setattr(triton_fw, name, lambda *a, _f=backward, _n=name: calls.append(_n) or _f(*a))
    inputs, s0 = make_inputs(1, T, 2, K, V, rule, state=state, seed=T + K)
    assert_matches_naive(inputs, s0, rule, "chunked")
    assert calls == ["backward_chunked"]


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_chunked_forward_with_recurrent_backward(rule, monkeypatch):
    """The fallback: a rule left out of CHUNKED_BACKWARD_RULES takes the recurrent backward after the chunked
    forward, whose chunk-start states and written values are its checkpoints and u."""
    monkeypatch.setattr(triton_fw, "CHUNKED_BACKWARD_RULES", ())
    inputs, s0 = make_inputs(1, 70, 1, 16, 16, rule, state=True, seed=29)
    assert_matches_naive(inputs, s0, rule, "chunked")


def out_of_resources(*args, **kwargs):
    """What a launch raises where a kernel needs more shared memory than the GPU has."""
    raise OutOfResources(262400, 232448, "shared memory")


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("too_big", ["forward_chunked", "backward_chunked"])
def test_a_chunked_kernel_too_big_for_the_gpu_falls_back_to_the_recurrent_one(rule, too_big, monkeypatch):
    """Large heads on a GPU with little shared memory: the recurrent kernel runs instead, with a warning, and every
    output and gradient still equals naive; without gradients too."""
    monkeypatch.setattr(triton_fw, "_TOO_BIG", set())  # this test's shapes found too big, for this test only
    tries = []
    monkeypatch.setattr(triton_fw, too_big, lambda *a, **k: tries.append(1) or out_of_resources())
    inputs, s0 = make_inputs(1, 70, 1, 16, 16, rule, state=True, seed=31)
    what = too_big.removesuffix("_chunked")
    with pytest.warns(UserWarning, match=f"the chunked Triton {what} needs more than this GPU has at K=16, V=16"):
        assert_matches_naive(inputs, s0, rule, "chunked")
    assert len(tries) == 1  # one try of the chunked kernel, then the recurrent one
    # once found too big, the shape goes straight to the recurrent kernel: no second try, no second warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_matches_naive(inputs, s0, rule, "chunked")
        with torch.no_grad():
            o, S = triton_fw.fast_weight_triton(*inputs, rule, 0.25, s0, algorithm="chunked")
    o_ref, S_ref = fast_weight_naive(*inputs, rule, 0.25, s0)
    assert max_rel(o, o_ref) < 1e-4 and max_rel(S, S_ref) < 1e-4
    assert len(tries) == 1 and not [w for w in caught if "chunked Triton" in str(w.message)]


@pytest.mark.parametrize("used", ["output", "final state"])
def test_gradient_when_only_one_result_is_used(used):
    inputs, s0 = make_inputs(1, 17, 2, 16, 16, "delta", state=True, seed=7)
    grads = []
    for fn in (fast_weight_naive, triton_fw.fast_weight_triton):
        leaves = [x.clone().requires_grad_() for x in [*inputs, s0]]
        o, S = fn(*leaves[:5], "delta", 0.25, leaves[5])
        loss = o.square().sum() if used == "output" else S.square().sum()
        grads.append(torch.autograd.grad(loss, leaves, materialize_grads=True))  # q is unused for the state
    for name, a, b in zip(NAMES[2:], grads[1], grads[0]):
        assert max_rel(a, b) < 1e-4, name


@pytest.mark.parametrize("T, expected", [(1, "recurrent"), (63, "recurrent"), (64, "chunked"), (130, "chunked")])
def test_auto_takes_the_chunked_forward_from_one_chunk_on(T, expected, monkeypatch):
    """Without gradients too (inference): the chosen forward alone, and it equals naive."""
    calls = []

    def spy_on(name: str, label: str) -> None:
        forward = getattr(triton_fw, name)

        def spy(*args, **kwargs):
            calls.append(label)
            return forward(*args, **kwargs)

        monkeypatch.setattr(triton_fw, name, spy)

    spy_on("forward_chunked", "chunked")
    spy_on("_forward", "recurrent")
    inputs, s0 = make_inputs(1, T, 1, 16, 16, "delta", state=True, seed=23)
    with torch.no_grad():
        o, S = triton_fw.fast_weight_triton(*inputs, "delta", 0.25, s0)
    o_ref, S_ref = fast_weight_naive(*inputs, "delta", 0.25, s0)
    assert calls == [expected] and o.grad_fn is None
    assert max_rel(o, o_ref) < 1e-4 and max_rel(S, S_ref) < 1e-4


def test_wake_steps_without_grad_chain_like_one_call():
    """One token at a time, state in and out, equals the whole sequence at once (the wake path)."""
    inputs, s0 = make_inputs(1, 3, 2, 32, 16, "delta", state=True, seed=11)
    o_ref, S_ref = fast_weight_naive(*inputs, "delta", 0.2, s0)
    S, outs = s0, []
    with torch.no_grad():
        for t in range(3):
            o, S = triton_fw.fast_weight_triton(*(x[:, t : t + 1] for x in inputs), "delta", 0.2, S)
            outs.append(o)
    assert o.grad_fn is None
    assert max_rel(torch.cat(outs, dim=1), o_ref) < 1e-5
    assert max_rel(S, S_ref) < 1e-5


def test_dispatcher_calls_the_triton_kernel(monkeypatch):
    calls, kernel = [], triton_fw.fast_weight_triton

    def spy(*args):
        calls.append(args[5])  # the rule
        return kernel(*args)

    monkeypatch.setattr(triton_fw, "fast_weight_triton", spy)
    inputs, _ = make_inputs(1, 5, 1, 16, 16, "hebbian", state=False)
    o, S = fast_weight(*inputs, rule="hebbian", backend="triton")
    o_ref, S_ref = fast_weight_naive(*inputs, "hebbian", 16**-0.5, None)
    assert calls == ["hebbian"]
    assert max_rel(o, o_ref) < 1e-5 and max_rel(S, S_ref) < 1e-5


def test_bad_input_is_named(monkeypatch):
    inputs, _ = make_inputs(1, 2, 1, 16, 16, "delta", state=False)
    with pytest.raises(ValueError, match="unknown rule 'oja'"):
        triton_fw.fast_weight_triton(*inputs, "oja", 1.0, None)
    with pytest.raises(ValueError, match="unknown algorithm 'fused'"):
        triton_fw.fast_weight_triton(*inputs, "delta", 1.0, None, algorithm="fused")
    q, k, v, g, beta = make_inputs(1, 2, 1, 512, 16, "delta", state=False)[0]
    with pytest.raises(ValueError, match="K <= 256"):
        triton_fw.fast_weight_triton(q, k, v, g, beta, "delta", 1.0, None)
    with pytest.raises(ValueError, match=r"initial_state must be \[B, H, K, V\]"):
        triton_fw.fast_weight_triton(*inputs, "delta", 1.0, torch.zeros(1, 1, 16, 8, device=DEVICE))
    with pytest.raises(ValueError, match="must all be on one device; got q on .*, initial_state on meta"):
        triton_fw.fast_weight_triton(*inputs, "delta", 1.0, torch.zeros(1, 1, 16, 16, device="meta"))
    if DEVICE == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(ValueError, match="needs CUDA tensors"):
            triton_fw.fast_weight_triton(*inputs, "delta", 1.0, None)


@gpu_only
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_bf16_is_close_to_fp32(rule, algorithm):
    """bf16 inputs are upcast in the kernel: only the rounding of inputs and results (and, chunked, TF32 products
    of fp32 intermediates) separates it from fp32."""
    inputs, s0 = make_inputs(2, 300, 4, 64, 64, rule, state=True, seed=13)
    inputs = [x.bfloat16().float() for x in inputs]  # the same values in both runs
    ref = run(fast_weight_naive, inputs, s0, rule)
    out = run(triton_with(algorithm), inputs, s0, rule, dtype=torch.bfloat16)
    assert out[0].dtype == torch.bfloat16 and out[1].dtype == torch.float32
    errors = {name: rms_rel(a, b) for name, a, b in zip(NAMES, out, ref)}
    assert all(e < 5e-3 for e in errors.values()), errors


@gpu_only
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_strong_decay_stays_finite(rule, algorithm):
    inputs, s0 = make_inputs(2, 300, 4, 64, 64, rule, state=True, seed=17)
    inputs[3] = torch.full_like(inputs[3], -5.0)  # every gate e^-5: the state nearly resets each token
    out = run(triton_with(algorithm), inputs, s0, rule)
    assert all(torch.isfinite(x).all() for x in out)
    assert_matches_naive(inputs, s0, rule, algorithm)


@gpu_only
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_long_sequence_with_large_heads(rule, algorithm):
    """T = 2048 is 32 chunks and checkpoints; K = V = 128 gives several V-blocks per head."""
    inputs, s0 = make_inputs(2, 2048, 2, 128, 128, rule, state=True, seed=19, low=-1.0)
    assert_matches_naive(inputs, s0, rule, algorithm)


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
def test_tiny_model_gives_the_same_loss_and_gradients_as_the_chunk_backend(rule, monkeypatch):
    """A two-pass sleep model (conv, mixing feed, fast weights carried across an eviction) through the Triton op:
    the same loss and every parameter's gradient as through the PyTorch chunk backend, to 1e-4 relative."""
    from sleepcore.config import ModelConfig, SleepConfig
    from sleepcore.model import SleepModel

    calls, kernel = [], triton_fw.fast_weight_triton
    monkeypatch.setattr(triton_fw, "fast_weight_triton", lambda *a, **kw: calls.append(a[5]) or kernel(*a, **kw))
    vocab, window, T = 12, 6, 18
    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, vocab, (2, T), generator=gen).to(DEVICE)
    mask = torch.zeros(2, T, dtype=torch.bool, device=DEVICE)
    mask[:, 2 * window + 1 :] = True
    results = {}
    for backend in ("chunk", "triton"):
        torch.manual_seed(0)
        cfg = ModelConfig(
            vocab_size=vocab,
            d_model=32,
            layers="attn,fw",
            attn_heads=2,
            fw_heads=2,
            head_dim=16,
            rule=rule,
            conv_size=2,
            max_positions=window,
            backend=backend,
        )
        sleep = SleepConfig(passes=2, window=window, feed="mix", norm_between=True, pass_embedding=True)
        model = SleepModel(cfg, sleep).to(DEVICE).train()
        loss = model(tokens, mask).logits[mask].float().logsumexp(-1).mean()
        loss.backward()
        results[backend] = (loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert calls and set(calls) == {rule}  # the model really went through the kernel: 2 passes, then 2 windows
    (loss_ref, grads_ref), (loss, grads) = results["chunk"], results["triton"]
    assert max_rel(loss, loss_ref) < 1e-4
    assert grads.keys() == grads_ref.keys() and any("mixer.q." in n for n in grads)
    for name, grad in grads.items():
        assert max_rel(grad, grads_ref[name]) < 1e-4, name
