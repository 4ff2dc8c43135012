"""The registry of code exercises: exercise id -> Exercise, found in the per-notebook modules of notebooks/.

Each module there is named after its assignment folder (`nb06_retnet` for `06_retnet`), declares that folder as
NOTEBOOK and lists its exercises in EXERCISES. Modules are discovered, not listed: a new one is picked up as is.
"""
import importlib
import pkgutil

from . import notebooks
from .exercise import Case, Exercise, Mistake


def _discover():
    modules = [importlib.import_module(f"{notebooks.__name__}.{info.name}")
               for info in sorted(pkgutil.iter_modules(notebooks.__path__), key=lambda info: info.name)]
    for module in modules:
        expected = "nb" + getattr(module, "NOTEBOOK", "?")
        if module.__name__.rsplit(".", 1)[1] != expected:
            raise ImportError(f"{module.__name__} declares NOTEBOOK = {getattr(module, 'NOTEBOOK', None)!r}: a checks"
                              " module is named 'nb' + its assignment folder")
    return tuple(modules)


MODULES = _discover()
EXERCISES = {}
for _module in MODULES:
    for _ex in _module.EXERCISES:
        if _ex.name in EXERCISES:
            raise ImportError(f"exercise {_ex.name!r} is defined twice (in {_module.__name__} too)")
        EXERCISES[_ex.name] = _ex
NOTEBOOK_OF = {ex.name: module.NOTEBOOK for module in MODULES for ex in module.EXERCISES}

__all__ = ["EXERCISES", "MODULES", "NOTEBOOK_OF", "Case", "Exercise", "Mistake"]
