"""linattn_ref: the reference implementation of every formula in the linear attention course.

One module per idea; each has a readable form first and faster forms beside it, all tested to agree:

    masks              causal masks and the query-key pairs a causal attention computes
    softmax_attention  parallel and recurrent (KV cache) softmax attention
    feature_maps       phi for kernelized attention
    linear_attention   mu / nu state variables; non-causal, parallel, recurrent and chunked linear attention
    memory             the general recurrent memory Mem_i = f((k_i, v_i), Mem_{i-1}) and linear scans
    retnet             retention with a fixed decay gamma
    gla                gated linear attention with per-dimension log-gates
    chunk              the one chunked core all three families share
    mqar               multi-query associative recall data (notebook 10)
    models             a tiny language model with any of the mixers, trained on MQAR (notebook 10)

Tensors are [..., T, d] ([B, H, T, d] as torch's scaled_dot_product_attention); scale=None means d_k ** -0.5.
"""
from . import chunk, feature_maps, gla, linear_attention, masks, memory, models, mqar, retnet, softmax_attention
from .chunk import chunk_boundaries, chunk_gated_linear_attention, chunk_states, intra_chunk_scores
from .feature_maps import elu_plus_one, identity, relu, taylor_exp
from .gla import gla_chunk, gla_gates, gla_parallel, gla_parallel_naive, gla_recurrent, naive_breakdown_length
from .linear_attention import (
    linear_attention_chunk,
    linear_attention_noncausal,
    linear_attention_parallel,
    linear_attention_recurrent,
    state_readout,
    state_update,
    state_variables,
)
from .masks import causal_mask, masked_scores, num_visible_keys, qk_pairs, visible_keys
from .memory import (
    CumulativeAverage,
    FixedWindow,
    HybridMemory,
    RunningSum,
    average_update,
    linear_scan_parallel,
    linear_scan_sequential,
    memory_numel,
    scan_memory,
    scan_rounds,
    window_update,
)
from .models import sequence_mixer, state_size
from .mqar import mqar_batch, mqar_layout
from .retnet import (
    decay_mask,
    effective_horizon,
    multiscale_gammas,
    retention_chunk,
    retention_parallel,
    retention_recurrent,
)
from .softmax_attention import (
    kv_cache_bytes,
    softmax_attention_parallel,
    softmax_attention_recurrent,
    softmax_attention_step,
)

__all__ = [name for name in dir() if not name.startswith("_")]
