"""How close the Triton kernels come to `linattn_ref` in float64: one table, per device and dtype.

The measure is the relative error ||o - ref|| / ||ref||. The CPU interpreter multiplies float32 exactly;
a GPU multiplies float32 in TF32 (10-bit mantissa, error near 1e-3), and in bfloat16 / float16 the kernel
rounds the scores and the state to the input's dtype before the tensor cores multiply them.
"""
import torch

RELATIVE_TOLERANCE = {
    ("interpreter", torch.float32): 1e-5,
    ("interpreter", torch.float16): 3e-3,
    ("gpu", torch.float32): 3e-3,
    ("gpu", torch.float16): 3e-3,
    ("gpu", torch.bfloat16): 1.5e-2,
}


def relative_error(out, ref):
    """||out - ref|| / ||ref|| in float64 (inf when out holds NaN or inf)."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref).norm() / ref.norm().clamp_min(torch.finfo(torch.float64).tiny)).item()


def tolerance(dtype, on_interpreter):
    """The relative error allowed for outputs of `dtype` on the interpreter or on a GPU."""
    key = ("interpreter" if on_interpreter else "gpu", dtype)
    if key not in RELATIVE_TOLERANCE:
        raise KeyError(f"no tolerance for {dtype} on the {key[0]}: the kernels are tested in "
                       f"{sorted({str(d) for (where, d) in RELATIVE_TOLERANCE if where == key[0]})} there")
    return RELATIVE_TOLERANCE[key]
