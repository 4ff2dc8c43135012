"""Shared pytest set-up.

Hypothesis runs a modest, reproducible set of examples with no deadline: CI and the course's machines are
small and shared, and a property test must not fail because another process took the CPU.
`HYPOTHESIS_PROFILE=explore` runs many more (random) examples when hunting for a bug.
"""
import os

import torch
from hypothesis import settings

settings.register_profile("course", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("explore", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))

# The tests use tiny tensors, for which torch's thread pool costs more than it saves; on a busy 2-core
# machine its waiting threads made the reference tests 3x slower in CPU time and 4x in wall time.
torch.set_num_threads(1)
