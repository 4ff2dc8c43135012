"""The Triton chunk kernels on a GPU: correctness first, then forward timings against torch baselines.

    python benchmarks/triton_gpu.py --out DIR [--sweep] [--skip-checks]

1. checks: every family in float32 / bfloat16 / float16 against linattn_ref in float64 (relative error,
   thresholds from linattn_ref.tolerances), on fresh random inputs, with the output memory poisoned
   with NaN first so that an unwritten element fails.
2. --sweep: launch settings (chunk, value block, warps, stages) at B=4, H=16, T=8192, d=128, bfloat16.
3. timings at B=4, H=16, d=128, bfloat16, T = 1024 ... 32768, median of triton.testing.do_bench: the three
   kernels, causal scaled_dot_product_attention, the masked quadratic form, the torch chunk form, and the
   memory floor (q, k, v read once and o written once at the measured copy bandwidth).
Writes DIR/triton_gpu.json, DIR/triton_gpu.md and DIR/triton_gpu.png.
"""
import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import linattn_ref as ref  # noqa: E402
from linattn_ref import triton as lt  # noqa: E402
from linattn_ref.triton import kernel  # noqa: E402

PREPARE_DEFAULTS = {name: getattr(kernel, name) for name in ("PREPARE_NUM_WARPS", "PREPARE_BLOCK_K")}

DEVICE = "cuda"
B, H, D = 4, 16, 128
CHECK_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
LENGTHS = [1024, 2048, 4096, 8192, 16384, 32768]
FAMILIES = ["linear", "retention", "gla"]
# per-head decays from strong to weak: 0.1 takes the decay matrix, the others the factored form, in one launch
MIXED_GAMMAS = [0.1, 0.3, 0.5, 0.9, 0.99, 0.999]


def log(*args):
    print(*args, flush=True)


def median_ms(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def inputs(T, dtype=torch.bfloat16, d_k=D, d_v=D, b=B, h=H, seed=0):
    """Random q, k, v, GLA log-gates (log sigmoid / 16, as GLA's layers make them) and per-head decays."""
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    q, k = (torch.randn(b, h, T, d_k, device=DEVICE, generator=gen, dtype=dtype) for _ in range(2))
    v = torch.randn(b, h, T, d_v, device=DEVICE, generator=gen, dtype=dtype)
    g = (F.logsigmoid(torch.randn(b, h, T, d_k, device=DEVICE, generator=gen)) / 16).to(dtype)
    return q, k, v, g, ref.multiscale_gammas(h)


def triton_call(family, q, k, v, g, gamma, **kw):
    if family == "linear":
        return lt.linear_attention_chunk(q, k, v, feature_map=None, normalize=kw.pop("normalize", False), **kw)
    if family == "retention":
        return lt.retention_chunk(q, k, v, gamma, **kw)
    return lt.gla_chunk(q, k, v, g, **kw)


def reference_call(family, q, k, v, g, gamma, **kw):
    q, k, v, g = (x.double() for x in (q, k, v, g))
    gamma = gamma.to(q.device)
    if family == "linear":
        return ref.linear_attention_chunk(q, k, v, feature_map=None, normalize=kw.pop("normalize", False), **kw)
    if family == "retention":
        return ref.retention_chunk(q, k, v, gamma, **kw)
    return ref.gla_chunk(q, k, v, g, **kw)


def poison(*shapes):
    """Fill memory the caching allocator will hand out next with NaN, so unwritten outputs show up."""
    blocks = [torch.full(s, float("nan"), device=DEVICE) for s in shapes]
    del blocks


def device_ceilings():
    n = 1 << 28  # 1 GiB of float32
    src, dst = torch.randn(n, device=DEVICE), torch.empty(n, device=DEVICE)
    copy_ms = median_ms(lambda: dst.copy_(src))
    a, b = (torch.randn(8192, 8192, device=DEVICE, dtype=torch.bfloat16) for _ in range(2))
    mm_ms = median_ms(lambda: a @ b)
    return {"copy_TBps": 2 * 4 * n / copy_ms / 1e9, "bf16_matmul_TFLOPs": 2 * 8192 ** 3 / mm_ms / 1e9}


def run_checks():
    """Relative errors against the float64 reference, per family, dtype and shape."""
    cases = [  # (batch, heads, T, d_k, d_v, with states); the last: rows of 40 bytes (no tensor descriptors)
        (2, 4, 1, 16, 16, False), (2, 4, 100, 64, 32, True), (1, 4, 1000, 128, 128, False),
        (1, 2, 777, 128, 96, True), (1, 3, 333, 40, 20, True),
    ]
    rows = []
    for dtype in CHECK_DTYPES:
        for family in FAMILIES + ["linear_normalized", "gla_strong_gates", "retention_mixed_gammas"]:
            for seed, (b, h, T, d_k, d_v, states) in enumerate(cases):
                fam = {"linear_normalized": "linear", "gla_strong_gates": "gla",
                       "retention_mixed_gammas": "retention"}.get(family, family)
                kw = {"normalize": True} if family == "linear_normalized" else {}
                q, k, v, g, gamma = inputs(T, dtype, d_k, d_v, b, h, seed=seed + 100)
                if seed == 1:  # non-contiguous inputs: the same values laid out [B, T, H, d]
                    q, k, v, g = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v, g))
                if family == "linear_normalized":  # the denominator needs positive scores
                    q, k = ref.elu_plus_one(q), ref.elu_plus_one(k)
                if family == "retention_mixed_gammas":
                    gamma = torch.tensor([MIXED_GAMMAS[i % len(MIXED_GAMMAS)] for i in range(h)])
                if family == "gla_strong_gates":  # chunks of 64 overflow: a second pass with 16 redoes them
                    g = (g.float() * 150).clamp_min(-9.9).to(dtype)
                if states:
                    init = torch.randn(b, h, d_k, d_v, device=DEVICE)
                    if family == "linear_normalized":
                        init = (init.abs(), torch.rand(b, h, d_k, device=DEVICE))
                    kw.update(initial_state=init, output_final_state=True)
                poison((b, h, T, d_v), (b, h, d_k, d_v))
                out = triton_call(fam, q, k, v, g, gamma, **dict(kw))
                expected = reference_call(fam, q, k, v, g, gamma, **dict(kw))
                outs, exps = (out, expected) if states else ((out,), (expected,))
                outs = [x for o in outs for x in (o if isinstance(o, tuple) else (o,))]
                exps = [x for o in exps for x in (o if isinstance(o, tuple) else (o,))]
                error = max(lt.relative_error(a, e) for a, e in zip(outs, exps))
                limit = lt.tolerance(dtype, on_interpreter=False)
                rows.append({"family": family, "dtype": str(dtype).split(".")[-1], "T": T, "d_k": d_k, "d_v": d_v,
                             "states": states, "rel_error": error, "limit": limit, "ok": error <= limit})
                log(f"check {family:18s} {rows[-1]['dtype']:9s} T={T:5d} d={d_k}/{d_v} states={states!s:5s} "
                    f"err={error:.2e} limit={limit:.0e} {'ok' if error <= limit else 'FAIL'}")
    return rows


def check_gate_errors():
    """Bad gates on the GPU: no host wait in gla_chunk, NaN in the output and final state, and the reference's
    error (same message) from raise_gate_errors(); strong gates: the second pass gives the right result."""
    q, k, v, g, _ = inputs(300, torch.bfloat16, 64, 32, 2, 4, seed=5)
    rows = []
    for name, bad in (("positive", g.float().abs() + 0.25), ("nan", torch.where(g < -0.05, float("nan"), g)),
                      ("inf", torch.where(g < -0.05, float("-inf"), g)), ("too strong", g.float() - 50)):
        bad = bad.to(g.dtype)
        try:
            ref.gla_chunk(q.double(), k.double(), v.double(), bad.double())
            expected = "log-gates too strong"  # valid for the reference; too strong for the kernel's factors
        except ValueError as e:
            expected = str(e)
        poison((2, 4, 300, 32), (2, 4, 64, 32))
        out, state = lt.gla_chunk(q, k, v, bad, output_final_state=True)
        torch.cuda.synchronize()
        try:
            lt.raise_gate_errors()
            message = "no error"
        except ValueError as e:
            message = str(e)
        ok = message.startswith(expected) and bool(out.isnan().all()) and bool(state.isnan().all())
        rows.append({"case": name, "message": message, "ok": ok})
        log(f"gate check {name:10s}: output NaN {bool(out.isnan().all())}, state NaN {bool(state.isnan().all())}, "
            f"message {message[:90]!r} {'ok' if ok else 'FAIL'}")
    return rows


def compare_variants(old, rounds=5, lengths=(8192, 32768)):
    """Old (the package as committed before) and new variants timed interleaved, A B A B ..., in one process:
    the spread between rounds says what is noise. Returns rows of (T, name, times)."""
    def variants(q, k, v, g, gamma):
        lin = dict(feature_map=None, normalize=False)
        nrm = dict(feature_map=None, normalize=True)
        qp, kp = ref.elu_plus_one(q), ref.elu_plus_one(k)
        return {
            "linear old": lambda: old.linear_attention_chunk(q, k, v, **lin),
            "linear new": lambda: lt.linear_attention_chunk(q, k, v, **lin),
            "normalized old": lambda: old.linear_attention_chunk(qp, kp, v, **nrm),
            "normalized new": lambda: lt.linear_attention_chunk(qp, kp, v, **nrm),
            "retention old": lambda: old.retention_chunk(q, k, v, gamma),
            "retention new": lambda: lt.retention_chunk(q, k, v, gamma),
            "gla checked old": lambda: old.gla_chunk(q, k, v, g),
            "gla checked new (loop keeps the state product in flight, 4 second-pass programs)":
                lambda: lt.gla_chunk(q, k, v, g),
            "gla unchecked old": lambda: old.gla_chunk(q, k, v, g, validate_gates=False),
            "gla unchecked new": lambda: lt.gla_chunk(q, k, v, g, validate_gates=False),
        }
    rows = []
    for T in lengths:
        q, k, v, g, gamma = inputs(T)
        calls = variants(q, k, v, g, gamma)
        times = {name: [] for name in calls}
        for name, fn in calls.items():  # compile and warm up outside the rounds
            fn()
        torch.cuda.synchronize()
        for _ in range(rounds):
            for name, fn in calls.items():
                times[name].append(median_ms(fn))
        for name, ts in times.items():
            ts_sorted = sorted(ts)
            rows.append({"T": T, "variant": name, "times": ts, "median": ts_sorted[len(ts) // 2]})
            log(f"compare T={T:6d} {name:84s} median {ts_sorted[len(ts) // 2]:.4f}  "
                f"min {ts_sorted[0]:.4f} max {ts_sorted[-1]:.4f}  ({', '.join(f'{t:.3f}' for t in ts)})")
        lt.raise_gate_errors()
        old.raise_gate_errors()
        del q, k, v, g
        torch.cuda.empty_cache()
    return rows


def check_at_size(family, T=8192, **kw):
    """The benchmark size itself in bfloat16, against the float64 chunk reference."""
    q, k, v, g, gamma = inputs(T, seed=7)
    poison((B, H, T, D))
    error = lt.relative_error(triton_call(family, q, k, v, g, gamma, **kw), reference_call(family, q, k, v, g, gamma))
    return error


def launch(chunk, block_v, warps, stages, **extra):
    return dict(chunk_size=chunk, block_v=block_v, num_warps=warps, num_stages=stages, **extra)


# launch settings to compare at T=8192 (benchmarks/NOTES_triton.md has the earlier rounds); tma: tensor descriptors
SWEEP = {
    "linear": [launch(64, 64, 4, 4), launch(64, 64, 4, 3), launch(64, 64, 4, 4, tma=False), launch(64, 64, 4, 5)],
    "linear (normalized)": [launch(64, 64, 4, 4), launch(64, 64, 4, 3), launch(64, 64, 4, 4, tma=False)],
    "retention": [launch(64, 64, 4, 3), launch(64, 64, 4, 4), launch(64, 64, 4, 3, tma=False),
                  launch(64, 64, 4, 4, tma=False)],
    "gla": [launch(64, 64, 4, 4), launch(64, 64, 4, 3), launch(64, 64, 4, 4, prepare_block_k=32),
            launch(64, 64, 4, 4, prepare_warps=4)],
}
PREPARE_SETTINGS = {"prepare_warps": "PREPARE_NUM_WARPS", "prepare_block_k": "PREPARE_BLOCK_K"}


def apply_settings(settings):
    """Set gla_prepare_kernel's module-level launch settings (defaults when absent); return the call's keywords."""
    for key, name in PREPARE_SETTINGS.items():
        setattr(kernel, name, settings.get(key, PREPARE_DEFAULTS[name]))
    return {key: value for key, value in settings.items() if key not in PREPARE_SETTINGS}


def run_sweep(T=8192):
    q, k, v, g, gamma = inputs(T)
    rows, best = [], {}
    for name, configs in SWEEP.items():
        family = name.split()[0]
        extra = {"normalize": True} if "normalized" in name else {}
        for settings in configs:
            kw = apply_settings(settings)
            try:
                ms = median_ms(lambda: triton_call(family, q, k, v, g, gamma, **extra, **kw))
            except Exception as e:  # a setting may not compile (shared memory, registers)
                log(f"sweep {name} {settings} failed: {str(e)[:160]}")
                rows.append({"family": name, **settings, "ms": None, "error": str(e)[:200]})
                continue
            rows.append({"family": name, **settings, "ms": ms})
            log(f"sweep {name:20s} {settings}: {ms:.4f} ms")
            if name not in best or ms < best[name][1]:
                best[name] = (settings, ms)
    apply_settings({})
    return rows, {name: settings for name, (settings, _) in best.items()}


def smoke():
    """A few small calls of every kernel (for compute-sanitizer): odd lengths, d_k != d_v, states."""
    for T, d_k, d_v in ((100, 64, 32), (300, 128, 128), (77, 32, 64)):
        q, k, v, g, gamma = inputs(T, torch.bfloat16, d_k, d_v, 2, 4)
        q, k = ref.elu_plus_one(q), ref.elu_plus_one(k)
        init = (torch.rand(2, 4, d_k, d_v, device=DEVICE), torch.rand(2, 4, d_k, device=DEVICE))
        out = triton_call("linear", q, k, v, g, gamma, normalize=True, initial_state=init)
        torch.cuda.synchronize()
        error = lt.relative_error(out, reference_call("linear", q, k, v, g, gamma, normalize=True,
                                                      initial_state=init))
        log(f"smoke linear normalized T={T} d={d_k}/{d_v}: error={error:.2e}")
    for family in FAMILIES:
        for T, d_k, d_v in ((300, 128, 128), (77, 64, 32)):
            q, k, v, g, gamma = inputs(T, torch.bfloat16, d_k, d_v, 1, 2)
            out, state = triton_call(family, q, k, v, g, gamma, output_final_state=True,
                                     initial_state=torch.randn(1, 2, d_k, d_v, device=DEVICE))
            torch.cuda.synchronize()
            log(f"smoke {family} T={T} d={d_k}/{d_v}: finite={bool(torch.isfinite(out).all())}")
    q, k, v, g, _ = inputs(1100, torch.bfloat16, 128, 128, 1, 2)  # more row blocks than second-pass programs
    out = lt.gla_chunk(q, k, v, (g.float() * 150).clamp_min(-9.9).to(g.dtype))
    torch.cuda.synchronize()
    log(f"smoke gla T=1100, strong gates: finite={bool(torch.isfinite(out).all())}")
    q, k, v, g, _ = inputs(200, torch.bfloat16, 64, 64, 1, 6)
    out = lt.retention_chunk(q, k, v, torch.tensor(MIXED_GAMMAS))  # the factored form and the decay matrix
    for name, gates in (("strong", (g.float() * 150).clamp_min(-9.9)), ("NaN", g.float() + float("nan"))):
        out = lt.gla_chunk(q, k, v, gates.to(g.dtype))  # the second pass: recomputed, or filled with NaN
        torch.cuda.synchronize()
        log(f"smoke gla {name} gates: NaN output {bool(out.isnan().all())}")
    try:
        lt.raise_gate_errors()
    except ValueError as e:
        log(f"smoke: {e}")


def quadratic_fits(T):
    free, _ = torch.cuda.mem_get_info()
    return 2 * B * H * T * T * 2 + 4 * (4 * B * H * T * D) < 0.9 * free  # scores, masked scores, fp32 inputs


def run_timings(settings, copy_TBps, lengths):
    rows = []
    for T in lengths:
        rows += time_length(T, settings, copy_TBps)
        torch.cuda.empty_cache()
    return rows


def time_length(T, settings, copy_TBps):
    q, k, v, g, gamma = inputs(T)
    scale = D ** -0.5
    log_gamma = gamma.log().float().to(DEVICE)
    io_bytes = 4 * B * H * T * D * 2  # q, k, v read, o written, bfloat16
    # name: (settings name, call); each Triton call runs with its family's best launch settings
    triton_calls = {
        "triton linear": ("linear", lambda kw: triton_call("linear", q, k, v, g, gamma, **kw)),
        "triton linear (normalized)": ("linear (normalized)",
                                       lambda kw: triton_call("linear", q, k, v, g, gamma, normalize=True, **kw)),
        "triton retention": ("retention", lambda kw: triton_call("retention", q, k, v, g, gamma, **kw)),
        "triton gla": ("gla", lambda kw: triton_call("gla", q, k, v, g, gamma, **kw)),
        "triton gla (validate_gates=False)": ("gla", lambda kw: triton_call("gla", q, k, v, g, gamma,
                                                                           validate_gates=False, **kw)),
    }
    methods = {
        "torch sdpa (causal)": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "torch chunk linear": lambda: ref.chunk_gated_linear_attention(q, k, v, None, scale, 64),
        "torch chunk retention": lambda: ref.chunk_gated_linear_attention(
            q, k, v, log_gamma.view(H, 1, 1).expand(B, H, T, 1).to(q.dtype), scale, 64),
        "torch chunk gla": lambda: ref.chunk_gated_linear_attention(q, k, v, g, scale, 64),
    }
    if quadratic_fits(T):
        def quadratic():
            with torch.autocast(DEVICE, dtype=torch.bfloat16):  # the reference's matrix products in bf16
                return ref.linear_attention_parallel(q, k, v, feature_map=None, normalize=False)
        methods["torch masked quadratic"] = quadratic
    rows = []
    for name in [*triton_calls, *methods]:
        if name.startswith("torch chunk") and T > 16384:
            continue  # hundreds of small launches per call; the trend is clear by then
        if name in triton_calls:
            family, call = triton_calls[name]
            kw = apply_settings(settings.get(family, {}))
            fn = (lambda call, kw: lambda: call(kw))(call, kw)
        else:
            fn = methods[name]
        try:
            ms = median_ms(fn)
        except torch.OutOfMemoryError:
            log(f"{name} T={T}: out of memory")
            torch.cuda.empty_cache()
            continue
        finally:
            apply_settings({})
        moved = io_bytes * (5 / 4 if "gla" in name else 1)  # GLA also reads its gates
        rows.append({"T": T, "method": name, "ms": ms, "GBps": moved / ms / 1e6})
        log(f"T={T:6d} {name:28s} {ms:9.4f} ms  {moved / ms / 1e6:7.0f} GB/s")
    for name, moved in (("memory floor (q,k,v,o)", io_bytes), ("memory floor GLA (+g)", io_bytes * 5 / 4)):
        ms = moved / (copy_TBps * 1e9)
        rows.append({"T": T, "method": name, "ms": ms, "GBps": moved / ms / 1e6})
    return rows


def write_markdown(path, result):
    rows = result["timings"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lengths = sorted({r["T"] for r in rows})
    cell = {(r["method"], r["T"]): r["ms"] for r in rows}
    lines = [f"Forward time in ms (median of triton.testing.do_bench), B={B}, H={H}, d={D}, bfloat16, "
             f"{result['device']}; copy bandwidth {result['ceilings']['copy_TBps']:.2f} TB/s.", "",
             "| method | " + " | ".join(f"T={T}" for T in lengths) + " |",
             "| --- | " + " | ".join("---:" for _ in lengths) + " |"]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(f"{cell[m, T]:.3f}" if (m, T) in cell else "-" for T in lengths) + " |")
    path.write_text("\n".join(lines) + "\n")


def write_plot(path, result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["timings"]
    fig, (ax_t, ax_bw) = plt.subplots(1, 2, figsize=(13, 5))
    for m in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r["T"], r["ms"], r["GBps"]) for r in rows if r["method"] == m)
        style = "k--" if m.startswith("memory floor") else "-o"
        ax_t.plot([p[0] for p in pts], [p[1] for p in pts], style, label=m, markersize=3)
        if not m.startswith(("memory floor", "torch")):
            ax_bw.plot([p[0] for p in pts], [p[2] for p in pts], "-o", label=m, markersize=3)
    ax_bw.axhline(result["ceilings"]["copy_TBps"] * 1e3, color="k", ls="--", label="copy bandwidth")
    for ax, title, unit in ((ax_t, "forward time", "ms"), (ax_bw, "achieved bandwidth (bytes that must move)", "GB/s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_t.set_yscale("log")
    ax_t.legend(fontsize=7)
    ax_bw.legend(fontsize=7)
    fig.suptitle(f"B={B}, H={H}, d={D}, bfloat16, {result['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--sweep", action="store_true", help="time a set of launch settings first and use the best")
    parser.add_argument("--skip-checks", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="only a few small calls (to run under compute-sanitizer)")
    parser.add_argument("--lengths", type=int, nargs="*", default=LENGTHS)
    parser.add_argument("--compare", type=Path, help="a folder holding linattn_ref_old (the package before): time "
                        "old and new variants interleaved")
    parser.add_argument("--no-norm-tc", action="store_true", help="the normalizer as row/column sums (if the "
                        "tensor-core form failed compute-sanitizer)")
    args = parser.parse_args()
    kernel.NORM_ON_TENSOR_CORES = not args.no_norm_tc
    if args.smoke:
        return smoke()
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "B": B, "H": H, "d": D, "dtype": "bfloat16"}

    def save():
        (args.out / "triton_gpu.json").write_text(json.dumps(result, indent=1))

    start = time.time()
    result["ceilings"] = device_ceilings()
    log(f"{result['device']} torch {torch.__version__} triton {triton.__version__}: {result['ceilings']}")
    if not args.skip_checks:
        try:
            result["checks"] = run_checks()
        except Exception:
            result["checks_crash"] = traceback.format_exc()
            log(result["checks_crash"])
        save()
        log(f"checks done at {time.time() - start:.0f} s")
    result["gate_errors"] = check_gate_errors()
    if args.compare:
        sys.path.insert(0, str(args.compare))
        import linattn_ref_old.triton as old
        result["compare"] = compare_variants(old)
        save()
        log(f"comparison done at {time.time() - start:.0f} s")
    settings = {}
    if args.sweep:
        result["sweep"], settings = run_sweep()
        result["best_settings"] = settings
        save()
        log(f"sweep done at {time.time() - start:.0f} s: {settings}")
    result["check_at_8192"] = {}
    for family in FAMILIES:
        result["check_at_8192"][family] = check_at_size(family, **apply_settings(settings.get(family, {})))
    apply_settings({})
    log(f"bfloat16 at T=8192, relative error: {result['check_at_8192']}")
    result["timings"] = run_timings(settings, result["ceilings"]["copy_TBps"], args.lengths)
    save()
    write_markdown(args.out / "triton_gpu.md", result)
    write_plot(args.out / "triton_gpu.png", result)
    log((args.out / "triton_gpu.md").read_text())
    failed = [c for c in result.get("checks", []) + result["gate_errors"] if not c["ok"]]
    log(f"done in {time.time() - start:.0f} s; {len(failed)} failed checks")


if __name__ == "__main__":
    main()
