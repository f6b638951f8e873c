"""Plain text from the reStructuredText markup of docstrings, for the CLI's help and listings."""

from __future__ import annotations

import re

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``(.+?)``", re.S)  # may wrap a line
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_")
_INTERPRETED = re.compile(r"`([^`]+)`")  # [^`] spans lines too


def plain(text: str) -> str:
    """Strip inline RST: ``x`` -> x, :class:`a.B` -> B, `label <url>`_ -> label, `x` -> x.

    Roles keep only the last dotted part of their target (``:func:`islr.config.load_config```
    reads ``load_config``); a trailing ``::`` becomes ``:``.
    """

    def role(match: re.Match[str]) -> str:
        target = match.group(1).strip()
        return target.rsplit(".", 1)[-1] if " " not in target else target

    text = _ROLE.sub(role, text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    return re.sub(r"::(\s|$)", r":\1", text)
