"""linattn_ref.triton: the chunked forms of linear attention, retention and GLA as one Triton kernel.

    kernel      the chunk kernel, with a compile-time gate kind (none / scalar per head / vector per key
                feature), GLA's per-chunk gate preparation, and their launcher
    families    linear_attention_chunk, retention_chunk, gla_chunk: the reference's signatures, thin wrappers

On a GPU the kernels compile for it. On the CPU they run in Triton's interpreter, which must be switched on
before this package is first imported:  TRITON_INTERPRET=1  (in a notebook: os.environ["TRITON_INTERPRET"] = "1").
"""
try:
    import triton  # noqa: F401  (named here so a missing install says so plainly)
except ImportError as error:
    raise ImportError("linattn_ref.triton needs the triton package (pip install triton; Linux only)") from error

from .. import tolerances
from ..tolerances import relative_error, tolerance  # the course's one table, linattn_ref.tolerances
from . import families, kernel
from .families import gla_chunk, linear_attention_chunk, raise_gate_errors, retention_chunk
from .kernel import chunk_gated_forward, interpreted

__all__ = ["families", "kernel", "tolerances", "gla_chunk", "linear_attention_chunk", "retention_chunk",
           "raise_gate_errors", "chunk_gated_forward", "interpreted", "relative_error", "tolerance"]
