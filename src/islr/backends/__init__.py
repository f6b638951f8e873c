"""The only seam between the framework-free trainer and a deep learning framework.

``get_backend("torch")`` / ``get_backend("tensorflow")`` import the framework lazily; this is the
one place where islr branches on the framework.
"""

from __future__ import annotations

import importlib

from islr.backends.base import Backend
from islr.models.registry import normalize_framework

_MODULES = {"torch": "islr.backends.torch_backend", "tensorflow": "islr.backends.tensorflow_backend"}


def get_backend(framework: str, **kwargs) -> Backend:
    """Instantiate the backend of ``framework`` (``torch`` or ``tensorflow``)."""
    module = importlib.import_module(_MODULES[normalize_framework(framework)])
    return module.create_backend(**kwargs)


__all__ = ["Backend", "get_backend"]
