"""Model registry: ``@register_model(name, framework)``, ``create_model``, ``list_models``.

The registry imports no framework. Families register themselves when their framework package
(``islr.models.torch`` or ``islr.models.tensorflow``) is imported, which ``create_model`` does
lazily for the framework asked for. Default constructor parameters of every model live in the
shipped YAML ``configs/models/<name>.yaml``; a model's constructor takes
``(input_dim, num_classes, **params)`` and returns a module mapping ``(x, mask)`` to logits.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from islr.config import configs_dir, read_yaml
from islr.errors import ConfigError, ModelError

FRAMEWORKS = ("torch", "tensorflow")
_ALIASES = {"pytorch": "torch", "tf": "tensorflow", "keras": "tensorflow"}
_REGISTRY: dict[tuple[str, str], Callable[..., Any]] = {}


def normalize_framework(framework: str) -> str:
    """Accept ``torch``/``pytorch`` and ``tensorflow``/``tf``/``keras``."""
    name = _ALIASES.get(framework.lower(), framework.lower())
    if name not in FRAMEWORKS:
        raise ConfigError(f"unknown framework {framework!r}; choose one of {FRAMEWORKS}")
    return name


def register_model(name: str, framework: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a builder ``fn(input_dim, num_classes, **params)`` under ``name``."""
    framework = normalize_framework(framework)

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        key = (name, framework)
        if key in _REGISTRY and _REGISTRY[key] is not builder:
            raise ModelError(f"model {name!r} is already registered for {framework}")
        _REGISTRY[key] = builder
        return builder

    return decorate


def unregister_model(name: str, framework: str) -> None:
    """Remove a registration (for throw-away models in experiments and tests)."""
    _REGISTRY.pop((name, normalize_framework(framework)), None)


def _load_framework(framework: str) -> None:
    importlib.import_module(f"islr.models.{framework}")


def list_models(framework: str | None = None) -> list[str]:
    """Registered model names (for one framework, or those of any)."""
    frameworks = [normalize_framework(framework)] if framework else list(FRAMEWORKS)
    for fw in frameworks:
        _load_framework(fw)
    return sorted({n for n, fw in _REGISTRY if fw in frameworks})


def model_config_path(name: str) -> Path:
    """The shipped YAML of a model's default parameters."""
    return configs_dir() / "models" / f"{name}.yaml"


def default_params(name: str) -> dict[str, Any]:
    """Default constructor parameters from ``configs/models/<name>.yaml`` (its ``model.params``)."""
    path = model_config_path(name)
    if not path.exists():
        return {}
    data = read_yaml(path)
    return dict(data.get("model", {}).get("params", {}))


def get_builder(name: str, framework: str) -> Callable[..., Any]:
    """The registered builder for ``name`` in ``framework``."""
    framework = normalize_framework(framework)
    _load_framework(framework)
    try:
        return _REGISTRY[(name, framework)]
    except KeyError:
        known = sorted(n for n, fw in _REGISTRY if fw == framework)
        raise ModelError(f"unknown {framework} model {name!r}; registered: {known}") from None


def create_model(
    name: str,
    framework: str,
    input_dim: int,
    num_classes: int,
    params: dict[str, Any] | None = None,
    use_defaults: bool = True,
) -> Any:
    """Build model ``name`` for ``framework``: shipped defaults updated by ``params``."""
    merged = default_params(name) if use_defaults else {}
    merged.update(params or {})
    builder = get_builder(name, framework)
    try:
        return builder(input_dim=input_dim, num_classes=num_classes, **merged)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad parameters {sorted(merged)} ({exc})") from None


def create_members(members: Any, framework: str, input_dim: int, num_classes: int) -> list[Any]:
    """Build an ensemble's ``[{"name": ..., "params": {...}}, ...]`` members through the registry.

    The member spec is checked here once for both frameworks (a non-empty list of mappings with
    a ``name`` and optional ``params``); each member gets its own shipped defaults.
    """
    if not isinstance(members, list | tuple) or not members:
        raise ConfigError("an ensemble needs a non-empty list 'members' of {name, params}")
    built = []
    for i, member in enumerate(members):
        if not isinstance(member, dict) or "name" not in member:
            raise ConfigError(f"ensemble member {i} must be a mapping with a 'name', got {member!r}")
        unknown = set(member) - {"name", "params"}
        if unknown:
            raise ConfigError(f"ensemble member {i}: unknown keys {sorted(unknown)}")
        params = member.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"ensemble member {i}: 'params' must be a mapping, got {params!r}")
        built.append(create_model(member["name"], framework, input_dim, num_classes, dict(params)))
    return built
