"""Every config key with its type, default, allowed values and docstring, and a commented YAML view.

Attribute docstrings (the string literal under a dataclass field) are not kept at run time, so
they are read from the class source with :mod:`ast`. Used by ``islr config keys`` / ``show``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass
from functools import cache
from typing import Any, get_type_hints

import yaml

from islr.config import ExperimentConfig, to_dict
from islr.rst import plain


@cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass, from the string literal that follows each field."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


@dataclass(frozen=True)
class KeyInfo:
    """One dotted config key."""

    key: str
    type: str
    default: Any
    doc: str
    choices: tuple[str, ...] = ()


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and not getattr(hint, "__args__", None):
        return hint.__name__
    return str(hint).replace("typing.", "")


def config_keys(cls: type = ExperimentConfig, prefix: str = "") -> list[KeyInfo]:
    """Every leaf key under ``cls`` in declaration order (``train.lr``, ``model.params``, ...)."""
    hints = get_type_hints(cls)
    default = cls()
    docs = field_docs(cls)
    out: list[KeyInfo] = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out.extend(config_keys(hint, f"{prefix}{f.name}."))  # type: ignore[arg-type]
            continue
        out.append(KeyInfo(f"{prefix}{f.name}", _type_name(hint), to_dict(getattr(default, f.name)),
                           plain(docs.get(f.name, "")), tuple(f.metadata.get("choices", ()))))
    return out


def section_docs() -> dict[str, str]:
    """The first docstring line of each top-level section (``data``, ``train``, ...)."""
    hints = get_type_hints(ExperimentConfig)
    return {f.name: plain((hints[f.name].__doc__ or "").strip().splitlines()[0])
            for f in dataclasses.fields(ExperimentConfig)}


def _flow(value: Any) -> str:
    """One value as inline YAML (``0.001``, ``[x, y]``, ``''``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return text.removesuffix("...").strip()


def keys_text(keys: list[KeyInfo]) -> str:
    """One block per key: ``key (type, default ...)`` then the indented docstring."""
    lines: list[str] = []
    for k in keys:
        head = f"{k.key} ({k.type}, default {_flow(k.default)}"
        head += f"; one of {', '.join(k.choices)})" if k.choices else ")"
        lines.append(head)
        lines.extend(textwrap.wrap(k.doc or "(undocumented)", 96, initial_indent="    ",
                                   subsequent_indent="    "))
    return "\n".join(lines) + "\n"


def commented_yaml(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML, each key preceded by its docstring as ``#`` comments.

    The text loads back with :func:`islr.config.load_config` to the same config.
    """
    data = to_dict(cfg)
    docs = {k.key: k for k in config_keys()}
    sections = section_docs()
    lines: list[str] = []
    for section, values in data.items():
        lines.append(f"# {sections[section]}")
        lines.append(f"{section}:")
        for name, value in values.items():
            info = docs[f"{section}.{name}"]
            doc = info.doc + (f" One of: {', '.join(info.choices)}." if info.choices else "")
            lines.extend(textwrap.wrap(doc, 94, initial_indent="  # ", subsequent_indent="  # "))
            if isinstance(value, dict) and value:
                dumped = yaml.safe_dump({name: value}, default_flow_style=False, sort_keys=False)
                lines.extend("  " + line for line in dumped.rstrip("\n").splitlines())
            else:
                lines.append(f"  {name}: {_flow(value)}")
        lines.append("")
    return "\n".join(lines)
