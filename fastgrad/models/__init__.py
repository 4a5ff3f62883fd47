"""The model table: one module per model family, each registering one :class:`~fastgrad.models.base.Model`.

Every module of this package except ``base`` (and those starting with ``_``) is imported
here, so a new family is its kernel file and its model module: nothing else lists it.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from fastgrad.models.base import REGISTRY, Model, TrainSetup, named, of, register

MODULES: dict[str, ModuleType] = {}
"""Each model module by its file's name, in the registry's order."""
for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        MODULES[_info.name] = importlib.import_module(f"{__name__}.{_info.name}")


def public() -> dict[str, object]:
    """What the model modules export to ``import fastgrad`` (each module's ``PUBLIC`` names)."""
    return {name: getattr(module, name) for module in MODULES.values() for name in getattr(module, "PUBLIC", ())}


__all__ = ["MODULES", "REGISTRY", "Model", "TrainSetup", "named", "of", "public", "register"]
