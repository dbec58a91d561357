"""`sleepcore bench kernels`: the fast-weight op's Triton kernels compiled ahead of time for a GPU, with no GPU.

Triton compiles for any NVIDIA target on any machine (its wheel carries ptxas and cuobjdump), so what a kernel
needs of a GPU can be read before one is lent: for each kernel, rule, input dtype, head size and launch config,
the shared memory per program (a launch needing more than the target's per-block limit fails with
OutOfResources, and the op then falls back to the recurrent kernel), the registers per thread (255 is the most),
the local memory its spills and stack take, and the compile time. Arguments are typed as the launchers in
sleepcore/ops pass them (pointers 16-byte aligned, as PyTorch allocates them); a launcher that changes its
arguments makes this fail with the name of the one it lacks, rather than report a kernel that never runs.

This runs without TRITON_INTERPRET (under it the modules pick the interpreter's configs): `sleepcore bench
kernels` refuses to run where it is set.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# per-block shared memory a kernel may opt into, bytes (the CUDA programming guide's table of compute capabilities)
TARGETS = {
    "sm_90": (90, 232_448, "H100, H200"),
    "sm_80": (80, 166_912, "A100"),
    "sm_89": (89, 101_376, "L4, L40, RTX 40xx"),
    "sm_86": (86, 101_376, "A10, RTX 30xx"),
}
COLUMNS = (
    "target kernel rule dtype K V BV warps stages shared_bytes shared_limit fits registers spill_bytes stack_bytes "
    "compile_s"
).split()
KERNELS = ("prep", "state", "output", "dstate", "grad", "recurrent_fwd", "recurrent_bwd")
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
F32 = "fp32"


@dataclass(frozen=True)
class Job:
    kernel: str  # one of KERNELS
    rule: str
    dtype: str  # a key of DTYPES
    K: int
    V: int
    BV: int
    warps: int
    stages: int
    pointers: tuple[tuple[str, str | None], ...]  # (argument, Triton element type, or None for an absent pointer)
    constants: tuple[tuple[str, object], ...]


def _modules():
    from sleepcore.ops import triton_chunk as tc
    from sleepcore.ops import triton_chunk_bwd as tb
    from sleepcore.ops import triton_fw as tf

    return tc, tb, tf


def jobs(
    rule: str, dtype: str, K: int, V: int, kernels: tuple[str, ...] = KERNELS, all_configs: bool = False
) -> list[Job]:
    """Every (kernel, launch config) the op launches for these inputs on a GPU: the fixed config of
    SLEEPCORE_TRITON_AUTOTUNE=0, or with all_configs every config the autotuner tries. The same in any process:
    every size is the GPU's (interpret=False), whatever this process runs."""
    tc, tb, tf = _modules()
    if rule not in ("delta", "hebbian"):
        raise ValueError(f"unknown rule {rule!r}; valid rules: delta, hebbian")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    unknown = sorted(set(kernels) - set(KERNELS))
    if unknown:
        raise ValueError(f"unknown kernel(s) {unknown}; valid: {', '.join(KERNELS)}")
    import torch

    delta, io = rule == "delta", DTYPES[dtype]
    prec = tc.precision(getattr(torch, dtype))
    BK_all, BT = tc._pad16(K), tc.CHUNK
    BK = min(BK_all, tc.BLOCK)
    fixed_bv, grad_bv = tc._fixed_block_v(V, interpret=False), tb._grad_block_v(V, interpret=False)
    f32_if_delta = F32 if delta else None
    u = F32 if delta else io  # the written values: fp32 for delta, v itself for hebbian
    grads = io if -(-V // grad_bv) == 1 else F32  # one V-block writes the gradients in their dtypes
    common = dict(H=8, K=K, V=V, BT=BT, PREC=prec)
    ptr = {
        "prep": dict(k=io, v=io, g=io, beta=io, gam=F32, w=f32_if_delta, u0=f32_if_delta, xs=f32_if_delta),
        "state": dict(k=io, v=io, gam=F32, beta=io, w=f32_if_delta, u0=f32_if_delta, h0=F32, h=F32)
        | dict(u=f32_if_delta, ht=F32),
        "output": dict(q=io, k=io, gam=F32, beta=io, h=F32, u=u, o=io),
        "dstate": dict(q=io, k=io, g=io, beta=io, do=io, dht=F32, xs=f32_if_delta, dh=F32, dr=f32_if_delta, dh0=F32),
        "grad": dict(q=io, k=io, u=u, g=io, beta=io, h=F32, dh=F32, do=io, dr=f32_if_delta)
        | dict(dq=grads, dk=grads, dv=io, dg=grads, dbeta=grads),
        "recurrent_fwd": dict(q=io, k=io, v=io, g=io, beta=io, h0=F32, o=io, ht=F32, ckpt=F32, u=f32_if_delta),
        "recurrent_bwd": dict(q=io, k=io, u=u, g=io, beta=io, do=io, dht=F32, ckpt=F32, scratch=F32)
        | dict(dq=F32, dk=F32, dv=io, dg=F32, dbeta=F32, dh0=F32),
    }
    const = {
        "prep": dict(common, BK=BK, BV=min(tc._pad16(V), tc.BLOCK), DELTA=delta, STORE_X=delta),
        "state": dict(common, BK=BK_all, DELTA=delta, USE_H0=True),
        "output": dict(common, BK=BK),
        "dstate": dict(common, BK=BK_all, DELTA=delta, USE_DHT=True, STORE_DH0=True),
        "grad": dict(common, BK=BK_all, BV=grad_bv, DELTA=delta),
    }
    configs = {  # the autotuner's lists, or the one fixed config
        "prep": tc._WARPS_STAGES,
        "state": tc._STATE_CONFIGS,
        "output": tc._OUTPUT_CONFIGS,
        "dstate": tb._DSTATE_CONFIGS,
        "grad": tb._GRAD_CONFIGS,
    }
    fixed = {"prep": {}, "state": {"BV": fixed_bv}, "output": {"BV": fixed_bv}, "dstate": {"BV": fixed_bv}}
    out = []
    for kernel in kernels:
        if kernel.startswith("recurrent"):  # not autotuned: Triton's default launch (4 warps, 3 stages)
            bk, bv = tf._tiles(K, V, interpret=False)
            consts = dict(H=8, K=K, V=V, BK=bk, BV=bv, CHUNK=tc.CHUNK, DELTA=delta)
            forward = kernel == "recurrent_fwd"
            consts |= dict(USE_H0=True, STORE_CKPT=True) if forward else dict(USE_DHT=True, STORE_DH0=True)
            launches = [({"BV": bv}, 4, 3)]
        else:
            consts = const[kernel]
            if all_configs:
                launches = [(c.kwargs, c.num_warps, c.num_stages) for c in configs[kernel]]
            else:
                launches = [(fixed.get(kernel, {}), tc.FIXED_LAUNCH["num_warps"], tc.FIXED_LAUNCH["num_stages"])]
        for meta, warps, stages in launches:
            c = consts | meta
            out.append(
                Job(kernel, rule, dtype, K, V, c["BV"], warps, stages, tuple(ptr[kernel].items()), tuple(c.items()))
            )
    return out


def _kernel_fn(kernel: str):
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("compiling for a GPU needs TRITON_INTERPRET unset (the kernels' modules read it on import)")
    tc, tb, tf = _modules()
    fn = {
        "prep": tc._prep_kernel,
        "state": tc._state_kernel,
        "output": tc._output_kernel,
        "dstate": tb._dstate_kernel,
        "grad": tb._grad_kernel,
        "recurrent_fwd": tf._fwd_kernel,
        "recurrent_bwd": tf._bwd_kernel,
    }[kernel]
    from triton.runtime.jit import JITFunction

    while not isinstance(fn, JITFunction):  # an Autotuner wraps it where the kernels are autotuned
        fn = fn.fn
    return fn


def _tool(name: str) -> str:
    import triton.backends.nvidia as nvidia

    path = Path(nvidia.__file__).parent / "bin" / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: this triton wheel carries no {name}")
    return str(path)


def compile_job(job: Job, target: str = "sm_90") -> dict:
    """Compile one job for the target; its row (COLUMNS). Raises what Triton or ptxas raise."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.compiler.compiler import make_backend

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid: {', '.join(TARGETS)}")
    arch, limit, _ = TARGETS[target]
    gpu = GPUTarget("cuda", arch, 32)
    backend = make_backend(gpu)
    fn = _kernel_fn(job.kernel)
    pointers, constants = dict(job.pointers), dict(job.constants)
    signature, constexprs, attrs = {}, {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in constants:
            signature[name], constexprs[name] = "constexpr", constants[name]
        elif name in pointers and pointers[name] is None:
            signature[name], constexprs[name] = "constexpr", None
        elif name in pointers:
            signature[name] = "*" + pointers[name]
            attrs[(i,)] = backend.parse_attr("D")  # 16-byte aligned, as torch allocates
        elif name in ("T", "scale"):
            signature[name] = "i32" if name == "T" else F32
        else:
            raise KeyError(f"{job.kernel}: argument {name!r} has no type here; update kernel_resources.jobs")
    t0 = time.perf_counter()
    compiled = triton.compile(
        ASTSource(fn, signature, constexprs, attrs),
        target=gpu,
        options=dict(num_warps=job.warps, num_stages=job.stages),
    )
    seconds = time.perf_counter() - t0
    usage = _resource_usage(compiled.asm["cubin"])
    shared = int(compiled.metadata.shared)
    return {
        "target": target,
        "kernel": job.kernel,
        "rule": job.rule,
        "dtype": job.dtype,
        "K": job.K,
        "V": job.V,
        "BV": job.BV,
        "warps": job.warps,
        "stages": job.stages,
        "shared_bytes": shared,
        "shared_limit": limit,
        "fits": shared <= limit,
        "registers": usage["REG"],
        "spill_bytes": usage["LOCAL"],
        "stack_bytes": usage["STACK"],
        "compile_s": round(seconds, 1),
    }


def _resource_usage(cubin: bytes) -> dict[str, int]:
    """REG, LOCAL and STACK of the one function in a cubin, read by cuobjdump --dump-resource-usage."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        text = subprocess.run(
            [_tool("cuobjdump"), "--dump-resource-usage", str(path)], capture_output=True, text=True, check=True
        ).stdout
    found = {key: re.search(rf"\b{key}:(\d+)", text) for key in ("REG", "LOCAL", "STACK")}
    missing = [key for key, m in found.items() if m is None]
    if missing:
        raise RuntimeError(f"cuobjdump printed no {', '.join(missing)}: {text.strip()[:300]!r}")
    return {key: int(m.group(1)) for key, m in found.items()}


def resources(
    rules: tuple[str, ...] = ("hebbian", "delta"),
    dtypes: tuple[str, ...] = ("bfloat16", "float32"),
    heads: tuple[tuple[int, int], ...] = ((64, 64),),
    kernels: tuple[str, ...] = KERNELS,
    target: str = "sm_90",
    all_configs: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Rows for every job of every (rule, dtype, K, V); a job that fails to compile is a row with its error."""
    rows = []
    todo = [
        j
        for rule, dtype, (K, V) in itertools.product(rules, dtypes, heads)
        for j in jobs(rule, dtype, K, V, kernels, all_configs)
    ]
    for i, job in enumerate(todo, 1):
        try:
            row = compile_job(job, target)
        except Exception as e:  # noqa: BLE001 - one kernel's failure is its row's, the table goes on
            row = dict.fromkeys(COLUMNS, "") | {
                "target": target,
                **{c: getattr(job, c) for c in ("kernel", "rule", "dtype", "K", "V", "BV", "warps", "stages")},
                "fits": f"error: {type(e).__name__}: {str(e).splitlines()[0][:120]}",
            }
        rows.append(row)
        if progress:
            print(
                f"  [{i}/{len(todo)}] {job.kernel:<13} {job.rule:<7} {job.dtype:<8} K={job.K} V={job.V} "
                f"w{job.warps} s{job.stages}: {row['shared_bytes']} B shared, {row['registers']} registers",
                flush=True,
            )
    return rows


def parse_heads(text: str) -> tuple[tuple[int, int], ...]:
    """ "64x64,128x128" -> ((64, 64), (128, 128)); ValueError naming what is wrong."""
    out = []
    for item in text.split(","):
        k, x, v = item.strip().partition("x")
        if not (x and k.isdigit() and v.isdigit() and 1 <= int(k) <= 256 and 1 <= int(v) <= 1024):
            raise ValueError(f"--heads {text!r}: each head size is KxV with K in 1..256 and V in 1..1024, e.g. 64x64")
        out.append((int(k), int(v)))
    return tuple(out)


def run_kernels(out: Path, target: str, heads: str, all_configs: bool, quick: bool = False) -> int:
    """`sleepcore bench kernels`: compile, print the table and what does not fit, write kernels.csv into out."""
    import datetime

    from sleepcore.bench import table, write_csv
    from sleepcore.bench_ops import triton_version

    if target not in TARGETS:
        raise ValueError(f"unknown --target {target!r}; valid: {', '.join(TARGETS)}")
    sizes = ((16, 16),) if quick else parse_heads(heads)
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise ValueError("bench kernels compiles for a GPU: unset TRITON_INTERPRET (it selects the interpreter)")
    os.environ.setdefault("TRITON_ALWAYS_COMPILE", "1")  # compile_s: a cold compile, not Triton's cache
    settings = dict(rules=("hebbian",), dtypes=("bfloat16",)) if quick else {}
    rows = resources(heads=sizes, target=target, all_configs=all_configs, **settings)
    write_csv(Path(out) / "kernels.csv", rows, list(COLUMNS))
    arch, limit, gpus = TARGETS[target]
    print(
        f"\nTriton kernels of the fast-weight op compiled for {target} ({gpus}; {limit:,} bytes of shared memory per "
        f"block), {'every autotune config' if all_configs else 'the fixed configs (SLEEPCORE_TRITON_AUTOTUNE=0)'}; "
        f"triton {triton_version()}, {datetime.date.today().isoformat()}"
    )
    print(table(rows, [c for c in COLUMNS if c not in ("target", "shared_limit")]))
    too_big = [r for r in rows if r["fits"] is False]
    failed = [r for r in rows if isinstance(r["fits"], str)]
    print(f"{len(rows) - len(too_big) - len(failed)} of {len(rows)} launches fit {target}'s shared memory")
    for r in too_big:
        print(
            f"too big: {r['kernel']} {r['rule']} {r['dtype']} K={r['K']} V={r['V']} needs {r['shared_bytes']:,} bytes: "
            "the op runs the recurrent kernel there instead"
        )
    for r in failed:
        print(f"failed: {r['kernel']} {r['rule']} {r['dtype']} K={r['K']} V={r['V']}: {r['fits']}")
    print(f"CSV written to {out}/")
    return 1 if failed else 0
