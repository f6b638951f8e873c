"""Griffe extension: turn Sphinx roles in docstrings into mkdocstrings cross-references.

The code documents itself with ``:func:`islr.x.f``` style roles. A fully qualified role becomes a
Markdown autoref (``[`f`][islr.x.f]``), so ``mkdocs build --strict`` fails when it names something
that does not exist. A short name (``:func:`train```) is linked when it resolves in the
docstring's scope, or names exactly one object of the package; otherwise it stays plain code.
``~`` shows only the last part of the name, as in Sphinx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from griffe import Extension, Module, Object

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([\w.]+)(?:\(\))?`")
PACKAGE = "islr"


def _objects(obj: Object) -> Iterator[Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _exists(pkg: Module, path: str) -> bool:
    if path == pkg.path:
        return True
    if not path.startswith(pkg.path + "."):
        return False
    try:
        return not pkg[path[len(pkg.path) + 1:]].is_alias
    except Exception:  # KeyError or an alias that cannot be resolved
        return False


def _target(obj: Object, name: str, pkg: Module, by_name: dict[str, set[str]]) -> str | None:
    """The full path a short role name refers to, or None."""
    head, _, rest = name.partition(".")
    try:
        path = obj.resolve(head) + (f".{rest}" if rest else "")
    except Exception:  # griffe's NameResolutionError
        path = ""
    if _exists(pkg, path):
        return path
    candidates = by_name.get(name.rsplit(".", 1)[-1], set())
    return next(iter(candidates)) if len(candidates) == 1 else None


class SphinxRoles(Extension):
    """Rewrite every docstring of the package once it is completely loaded."""

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:
        if pkg.path != PACKAGE:
            return
        objects = list(_objects(pkg))
        by_name: dict[str, set[str]] = {}
        for obj in objects:
            by_name.setdefault(obj.name, set()).add(obj.path)
        for obj in objects:
            if obj.docstring is None:
                continue

            def replace(match: re.Match[str], obj: Object = obj) -> str:
                short, name = match.group(1), match.group(2)
                shown = name.rsplit(".", 1)[-1] if short else name
                target = name if name.startswith(PACKAGE + ".") else _target(obj, name, pkg, by_name)
                return f"[`{shown}`][{target}]" if target else f"`{shown}`"

            obj.docstring.value = ROLE.sub(replace, obj.docstring.value)
