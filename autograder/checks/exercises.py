"""The registry of code exercises: exercise id -> Exercise, gathered from the notebook modules in catalogue/."""
from .cases import Case, Exercise, Mistake
from .catalogue import (
    nb01_masks,
    nb02_softmax,
    nb03_linear,
    nb04_states,
    nb05_memory,
    nb06_retnet,
    nb07_gla,
    nb08_chunk,
    nb09_triton,
    nb10_capstone,
)

MODULES = (nb01_masks, nb02_softmax, nb03_linear, nb04_states, nb05_memory, nb06_retnet, nb07_gla, nb08_chunk,
           nb09_triton, nb10_capstone)
EXERCISES = {ex.name: ex for module in MODULES for ex in module.EXERCISES}

__all__ = ["EXERCISES", "Case", "Exercise", "Mistake"]
