"""How close a result must come to the reference: the course's one table of tolerances, by dtype.

Two measures, for two kinds of result:

    ELEMENTWISE  (rtol, atol) of each value, |got - expected| <= atol + rtol * |expected|, compared in float64
                 as in torch.testing.assert_close: how the exercise checks judge a learner's result
    RELATIVE     the relative error ||o - ref|| / ||ref|| against the float64 reference: how the Triton kernels
                 are judged, on the CPU interpreter or a GPU

The CPU interpreter multiplies float32 exactly; a GPU multiplies float32 in TF32 (10-bit mantissa, error near
1e-3), and in bfloat16 / float16 the kernel rounds the scores and the state to the input's dtype before the
tensor cores multiply them.
"""
import torch

ELEMENTWISE = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (2e-2, 1e-2),
}

RELATIVE = {
    ("interpreter", torch.float32): 1e-5,
    ("interpreter", torch.float16): 3e-3,
    ("gpu", torch.float32): 3e-3,
    ("gpu", torch.float16): 3e-3,
    ("gpu", torch.bfloat16): 1.5e-2,
}


def elementwise(dtype):
    """(rtol, atol) for values of `dtype`; integers and bools compare exactly."""
    return ELEMENTWISE.get(dtype, (0.0, 0.0))


def relative_error(out, ref):
    """||out - ref|| / ||ref|| in float64 (inf when out holds NaN or inf)."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref).norm() / ref.norm().clamp_min(torch.finfo(torch.float64).tiny)).item()


def tolerance(dtype, on_interpreter):
    """The relative error allowed for kernel outputs of `dtype` on the interpreter or on a GPU."""
    key = ("interpreter" if on_interpreter else "gpu", dtype)
    if key not in RELATIVE:
        raise KeyError(f"no tolerance for {dtype} on the {key[0]}: the kernels are tested in "
                       f"{sorted({str(d) for (where, d) in RELATIVE if where == key[0]})} there")
    return RELATIVE[key]
