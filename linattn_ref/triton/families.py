"""Linear attention, retention and GLA on the Triton chunk kernel: thin wrappers, as in `linattn_ref`.

Each function has the signature of its reference in `linattn_ref` (plus keyword-only launch settings), checks
its input with the reference's own checks, turns its gate into log-gates and calls the one chunk kernel
(for GLA after `gla_prepare_kernel`, see kernel.py).
Inputs are float32, bfloat16 or float16 [..., T, d] with d <= 128; the kernel accumulates in float32 and
returns final states in float32, as the reference does. `chunk_size` (16, 32, 64 or 128) only sets the
kernel's tile: the result does not depend on it. Launch settings: block_v, num_warps, num_stages, and tma
(tensor descriptors on or off; None: the kernel's default, where the GPU and the shapes allow).
"""
import functools
import math
import os

import torch

from .. import feature_maps
from .._validate import (
    check_chunk_size,
    check_gamma,
    check_gate_shape,
    check_linear_attention_state,
    check_qkv,
    check_state,
    gate_value_error,
    resolve_scale,
)
from .kernel import (
    CHUNK_FOR_STRONG_GATES,
    GATE_NONE,
    GATE_SCALAR,
    GATE_VECTOR,
    MAX_GATE_EXPONENT,
    MAX_HEAD_DIM,
    NONFINITE_GATES,
    OUT_OF_RANGE,
    POSITIVE_GATES,
    chunk_gated_forward,
    interpreted,
)

KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
CHUNK_SIZES = (16, 32, 64, 128)


def _check_runnable(q, *others):
    """q (and everything else) must sit on one device Triton can run on; q's dtype must suit the kernel."""
    tensors = (q, *(x for x in others if x is not None))
    devices = {str(x.device) for x in tensors}
    if len(devices) > 1:
        raise ValueError(f"all tensors (inputs, gates, states) must be on one device, got {sorted(devices)}")
    if q.device.type == "cpu" and not interpreted():
        hint = ("TRITON_INTERPRET=1 is set now but was not when linattn_ref.triton was first imported: set it "
                "before that import (restart the Python process or notebook kernel)"
                if os.environ.get("TRITON_INTERPRET") == "1" else
                "set the environment variable TRITON_INTERPRET=1 before importing linattn_ref.triton "
                "(shell: TRITON_INTERPRET=1 python ...; notebook: os.environ['TRITON_INTERPRET'] = '1' first)")
        raise RuntimeError(f"the Triton kernels need a GPU, and these tensors are on the CPU. To run them on the CPU "
                           f"in Triton's interpreter, {hint}.")
    if q.device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"the Triton kernels run on CUDA GPUs (or the CPU interpreter), not on {q.device}")
    if q.dtype not in KERNEL_DTYPES:
        raise TypeError(f"the Triton kernels take float32, bfloat16 or float16, got {q.dtype}; "
                        "for float64 use the reference functions in linattn_ref")
    if interpreted() and any(x.dtype == torch.bfloat16 for x in tensors):
        raise TypeError("Triton's CPU interpreter computes bfloat16 wrongly; use float32 (or float16) on the CPU")


def _check_head_dims(d_k, d_v):
    if not (1 <= d_k <= MAX_HEAD_DIM and 1 <= d_v <= MAX_HEAD_DIM):
        raise ValueError(f"the Triton kernel holds a [d_k, d_v] state of at most {MAX_HEAD_DIM} x {MAX_HEAD_DIM}; "
                         f"got d_k={d_k} (after the feature map), d_v={d_v}")


def _check_chunk(chunk_size):
    check_chunk_size(chunk_size)
    if chunk_size not in CHUNK_SIZES:
        raise ValueError(f"chunk_size is the kernel's tile height and must be one of {CHUNK_SIZES}, got {chunk_size}")


def _output(o, state, output_final_state):
    return (o, state) if output_final_state else o


def linear_attention_chunk(q, k, v, feature_map=feature_maps.elu_plus_one, normalize=True, scale=None, eps=0.0,
                           chunk_size=64, initial_state=None, output_final_state=False, *, block_v=None,
                           num_warps=None, num_stages=None, tma=None):
    """Causal linear attention o_i = (q'_i mu_i) / (q'_i . nu_i) (or q'_i mu_i with normalize=False).

    As `linattn_ref.linear_attention_chunk`. The feature map runs in torch; the kernel sees q' and k'.
    initial_state: (mu, nu) with normalize=True, mu alone otherwise. Returns o, or (o, final_state).
    """
    _, d_k, d_v = check_qkv(q, k, v)
    _check_chunk(chunk_size)
    scale = resolve_scale(scale, d_k)
    phi = feature_maps.resolve(feature_map)
    qp, kp = phi(q), phi(k)
    if qp.shape != kp.shape or qp.shape[:-1] != q.shape[:-1] or qp.dtype != q.dtype:
        raise ValueError(f"the feature map must map q and k [..., T, d] to [..., T, d'] of their dtype, got q' "
                         f"{tuple(qp.shape)} {qp.dtype} and k' {tuple(kp.shape)} from {tuple(q.shape)} {q.dtype}")
    _check_head_dims(qp.shape[-1], d_v)
    init = check_linear_attention_state(initial_state, normalize, q.shape[:-2], qp.shape[-1], d_v, torch.float32)
    mu0, nu0 = init if init is not None else (None, None)
    _check_runnable(qp, kp, v, mu0, nu0)
    o, mu, nu = chunk_gated_forward(qp, kp, v, GATE_NONE, None, scale, chunk_size, mu0, nu0, normalize, eps,
                                    output_final_state, block_v, num_warps, num_stages, tma=tma)
    return _output(o, (mu, nu) if normalize else mu, output_final_state)


def retention_chunk(q, k, v, gamma, scale=None, chunk_size=64, initial_state=None, output_final_state=False, *,
                    block_v=None, num_warps=None, num_stages=None, tma=None):
    """Retention S_t = gamma S_{t-1} + k_t^T v_t, o_t = scale q_t S_t; gamma a float or one per head [H].

    As `linattn_ref.retention_chunk`. Returns o, or (o, final_state) when output_final_state is True.
    """
    T, d_k, d_v = check_qkv(q, k, v)
    _check_chunk(chunk_size)
    gamma = check_gamma(gamma, q)
    scale = resolve_scale(scale, d_k)
    _check_head_dims(d_k, d_v)
    init = None
    if initial_state is not None:
        init = check_state("initial_state", initial_state, (*q.shape[:-2], d_k, d_v), torch.float32)
    _check_runnable(q, k, v, init)
    if gamma.device == q.device:
        log_gamma = gamma.log().reshape(-1).to(torch.float32)
    else:
        log_gamma = _log_gammas_on(q.device, tuple(gamma.reshape(-1).tolist()))
    o, state, _ = chunk_gated_forward(q, k, v, GATE_SCALAR, log_gamma, scale, chunk_size, init, None, False, 0.0,
                                      output_final_state, block_v, num_warps, num_stages, tma=tma)
    return _output(o, state, output_final_state)


@functools.lru_cache(maxsize=64)
def _log_gammas_on(device, gammas):
    """log gamma per head, float32, on `device`: copied once per set of values. A copy from host memory in every
    call waits for the GPU to finish its queue (pageable memory) or may (new pinned memory): 0.1-0.2 ms a call."""
    return torch.tensor(gammas, dtype=torch.float64).log().to(device=device, dtype=torch.float32)


def gla_chunk(q, k, v, g, scale=None, chunk_size=64, initial_state=None, output_final_state=False, *,
              validate_gates=True, block_v=None, num_warps=None, num_stages=None, tma=None):
    """GLA S_t = Diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t; g log-gates shaped like k.

    As `linattn_ref.gla_chunk`. Inside a chunk the kernel multiplies factors exp(b_i - b_mid) and
    exp(b_mid - b_j), each a sum of up to chunk/2 log-gates, and keeps them within exp(80); between chunks it
    decays the state by two such half-chunk sums at once, which must stay above -40 each.
    validate_gates=True checks the gates on the GPU as the kernel reads them, and the host never waits for
    that check: gates too strong for the chunk make a second pass with chunks of 16 redo the work (on the GPU);
    gates that are NaN, inf or positive, or too strong even for chunks of 16, fill the output (and final state)
    with NaN there, and the reference's error is raised as soon as the result is known without waiting: at
    once on the CPU; on a GPU by the next gla_chunk call or `raise_gate_errors()`, whichever comes first.
    validate_gates=False skips the checks and the second pass (for log-gates known to be valid: no half chunk
    summing below -40 per feature, e.g. log-sigmoids divided by 16): wrong gates then give wrong outputs
    silently.
    Returns o, or (o, final_state) when output_final_state is True.
    """
    _, d_k, d_v = check_qkv(q, k, v)
    _check_chunk(chunk_size)
    check_gate_shape(g, k)
    scale = resolve_scale(scale, d_k)
    _check_head_dims(d_k, d_v)
    init = None
    if initial_state is not None:
        init = check_state("initial_state", initial_state, (*q.shape[:-2], d_k, d_v), torch.float32)
    _check_runnable(q, k, v, g, init)
    raise_gate_errors(wait=False)  # an earlier call's check that has finished by now
    status = torch.zeros(3, dtype=torch.int32, device=q.device) if validate_gates else None
    o, state, _ = chunk_gated_forward(q, k, v, GATE_VECTOR, g, scale, chunk_size, init, None, False, 0.0,
                                      output_final_state, block_v, num_warps, num_stages, status, tma)
    if validate_gates:
        if q.device.type == "cpu":  # the interpreter has finished: read the flags now
            _raise_for(status)
        else:  # copy the flags to the host when the GPU gets there; read them once that has happened
            flags = torch.empty(3, dtype=torch.int32, pin_memory=True)
            flags.copy_(status, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            _PENDING_GATE_CHECKS.append((done, flags))
    return _output(o, state, output_final_state)


_PENDING_GATE_CHECKS = []  # (event, host flags) of gla_chunk calls on a GPU whose check has not been read yet


def raise_gate_errors(wait=True):
    """Raise the error of the first earlier gla_chunk call on a GPU whose gates failed the check (see gla_chunk).

    wait=True waits for the GPU to finish those calls; wait=False reads only the checks already finished.
    """
    while _PENDING_GATE_CHECKS:
        done, flags = _PENDING_GATE_CHECKS[0]
        if not wait and not done.query():
            return
        done.synchronize()
        _PENDING_GATE_CHECKS.pop(0)
        _raise_for(flags, later=True)


def _raise_for(status, later=False):
    first, second, max_bits = status.tolist()
    note = (" (found on the GPU after an earlier gla_chunk call returned; its output and final state are NaN)"
            if later else "")
    if (first | second) & (NONFINITE_GATES.value | POSITIVE_GATES.value):
        max_gate = torch.tensor([max_bits], dtype=torch.int32).view(torch.float32).item()
        error = gate_value_error(nonfinite=bool((first | second) & NONFINITE_GATES.value), max_gate=max_gate)
        raise ValueError(str(error) + note)
    if second & OUT_OF_RANGE.value:
        raise ValueError(f"log-gates too strong for the Triton GLA kernel: {CHUNK_FOR_STRONG_GATES // 2} consecutive "
                         f"log-gates sum below -{MAX_GATE_EXPONENT:g} (gates alpha below about "
                         f"{math.exp(-MAX_GATE_EXPONENT / (CHUNK_FOR_STRONG_GATES // 2)):.1g} each, which forget "
                         f"almost everything in one step). Clamp g, or use linattn_ref.gla_chunk{note}")
