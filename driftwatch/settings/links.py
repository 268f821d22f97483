"""``link_template``: a link to a policy's source, e.g. a line of a file at a commit on GitHub.

The template is a ``str.format`` string using only ``{commit}``, ``{path}``, ``{line}``
and ``{repo}`` (format specs work too: ``{commit:.12}``); anything else is refused when
the configuration is validated. :func:`render_link` fills it from a ``Provenance``.
"""

from __future__ import annotations

import string
from urllib.parse import quote

from driftwatch.policy import Provenance

__all__ = ["PLACEHOLDERS", "check_link_template", "render_link"]

PLACEHOLDERS = ("commit", "path", "line", "repo")
_USE = "use {commit}, {path}, {line} or {repo}"


def _fields(template: str) -> list[str]:
    """The placeholder names in ``template``, in order; ValueError when it is malformed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"invalid link template: {e} (write {{{{ and }}}} for braces)") from None
    return [name for _, name, _, _ in parsed if name is not None]


def check_link_template(template: str) -> str:
    """``template`` if it only uses the known placeholders; ValueError naming the first other."""
    for name in _fields(template):
        if name == "" or name.isdigit():
            raise ValueError(f"positional placeholder {{{name}}}: {_USE}")
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{name}}}: {_USE}")
    try:
        template.format(commit="0" * 40, path="a/b.yaml", line=1, repo="repo")
    except (ValueError, KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"invalid link template: {e}") from None
    return template


def render_link(template: str, provenance: Provenance | None) -> str | None:
    """The link to ``provenance``, or None when its commit (or a ``{repo}`` it needs) is unknown.

    ``{path}`` is percent-encoded (``/`` kept), so a file name with a space stays a valid URL.
    """
    if provenance is None or provenance.commit is None:
        return None
    if provenance.repo is None and "repo" in _fields(template):
        return None
    return template.format(
        commit=provenance.commit,
        path=quote(provenance.path, safe="/"),
        line=provenance.line,
        repo=provenance.repo or "",
    )
