"""A resolved config written as YAML with each key's help as a comment (``vltk config show``).

The help of a key comes from the docstring of the class that defines it: a dataclass section's
``Attributes:`` section (Google style) or an inline ````key````: sentence; a component's options (a
``spec_field``/``options_field`` section: ``data``, ``model.encoder``, ...) from the ``Args:`` section of the
registered class or builder that takes them. A key whose class says nothing about it gets its type (the
choices of a ``Literal``), so every line says at least what it accepts. The YAML reads back to the same
config: the comments are the only addition.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from vltk.config import Component
from vltk.registry import constructor_type_hints, describe_type, docstring_summary, kind_of

_SECTION = re.compile(r"^(\s*)(Args|Arguments|Attributes|Parameters):\s*$")
_ENTRY = re.compile(r"^(\s*)([A-Za-z_][\w, ]*):\s*(.*)$")
_INLINE = re.compile(r"``(\w+)``\s*:\s*(.+?)(?=\s``\w+``\s*:|(?<=\.)\s+``|\n\s*\n|$)", re.DOTALL)


def _one_line(text: str, limit: int = 150) -> str:
    text = " ".join(text.replace("``", "`").split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def docstring_help(obj: Any) -> dict[str, str]:
    """``name -> help`` from ``obj``'s docstring (and its ``__init__``'s): the entries of its ``Args:`` /
    ``Attributes:`` sections (``start_id, end_id: ...`` gives both names the line), then the inline
    ````name````: sentences of its prose for names not listed there."""
    texts = []
    for source in _help_sources(obj):
        texts.append(inspect.getdoc(source) or "")
        init = getattr(source, "__init__", None)
        if inspect.isclass(source) and init is not None and init is not object.__init__:
            texts.append(inspect.getdoc(init) or "")
    found: dict[str, str] = {}
    for text in texts:
        found.update({k: v for k, v in _section_entries(text).items() if k not in found})
    for text in texts:
        for name, sentence in _INLINE.findall(text):
            found.setdefault(name, _one_line(sentence))
    return found


def _help_sources(obj: Any) -> list[Any]:
    """``obj``, the dataclass sections it derives from, and the options dataclass of a DataModule
    (``options_type``, whose fields are keys of its section) with its bases."""
    sources = [obj]
    if inspect.isclass(obj):
        sources += [base for base in obj.__mro__[1:] if dataclasses.is_dataclass(base)]
    options = getattr(obj, "options_type", None)
    if inspect.isclass(options):
        sources += [base for base in options.__mro__ if dataclasses.is_dataclass(base)]
    return sources


def _section_entries(text: str) -> dict[str, str]:
    entries: dict[str, list[str]] = {}
    section_indent = None
    current: list[str] | None = None
    entry_indent = None
    for line in text.splitlines():
        heading = _SECTION.match(line)
        if heading:
            section_indent, current, entry_indent = len(heading.group(1)), None, None
            continue
        if section_indent is None:
            continue
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped and indent <= section_indent:  # the section ended
            section_indent, current = None, None
            continue
        entry = _ENTRY.match(line)
        if entry and (entry_indent is None or indent == entry_indent):
            entry_indent = indent
            current = [entry.group(3)]
            for name in entry.group(2).split(","):
                entries[name.strip()] = current
        elif current is not None and stripped:
            current.append(stripped)
    return {name: _one_line(" ".join(lines)) for name, lines in entries.items()}


def _factory_of(component: Component, name: Any) -> Callable[..., Any] | None:
    try:
        return component.registry[name]
    except (KeyError, TypeError):
        return None


def _factory_types(factory: Callable[..., Any] | None) -> dict[str, str]:
    """``keyword -> what it accepts`` for the constructor of a component (``{}`` when unknown)."""
    if factory is None:
        return {}
    hints = constructor_type_hints(factory)
    return {name: describe_type(hint) for name, hint in hints.items() if name != "return"}


def _scalar(value: Any) -> str:
    """``value`` as one line of YAML flow syntax (what ``yaml.safe_load`` reads back to ``value``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text.removesuffix("...").strip()


class _Writer:
    def __init__(self, fallback: Mapping[str, str]) -> None:
        self.fallback = fallback  # help of top-level keys whose class says nothing of them
        self.lines: list[str] = []
        self.keys = 0
        self.with_prose = 0

    def key(self, indent: int, name: str, value: str | None, prose: str | None, kind: str | None) -> None:
        self.keys += 1
        self.with_prose += prose is not None
        note = prose or kind
        head = f"{'  ' * indent}{name}:" + (f" {value}" if value is not None else "")
        self.lines.append(f"{head}  # {note}" if note else head)

    def section(self, indent: int, title: str) -> None:
        if title:
            self.lines.append(f"{'  ' * indent}# {title}")

    def dataclass(self, obj: Any, indent: int) -> None:
        helps = docstring_help(type(obj))  # its own docstring and those of the sections it extends
        hints = typing.get_type_hints(type(obj))
        for spec in dataclasses.fields(obj):
            value = getattr(obj, spec.name)
            component = spec.metadata.get("component")
            prose = helps.get(spec.name) or (self.fallback.get(spec.name) if indent == 0 else None)
            if dataclasses.is_dataclass(value):
                self.key(indent, spec.name, None, prose, _summary(type(value)))
                self.dataclass(value, indent + 1)
            elif component is not None and isinstance(value, Mapping):
                chosen = (
                    getattr(obj, "name", None) if spec.metadata.get("chosen_by_name") else value.get("name")
                )
                factory = _factory_of(component, chosen)
                self.key(indent, spec.name, None if value else "{}", prose, _summary(factory))
                self.options(value, component, factory, indent + 1)
            else:
                self.key(
                    indent, spec.name, _scalar(value), prose, describe_type(hints.get(spec.name, type(value)))
                )

    def options(
        self, values: Mapping[str, Any], component: Component, factory: Callable[..., Any] | None, indent: int
    ) -> None:
        helps = docstring_help(factory) if factory is not None else {}
        types = _factory_types(factory)
        for name, value in values.items():
            if name == "name":
                kind = f"{kind_of(component.registry)}: one of `vltk list`"
                self.key(indent, name, _scalar(value), None, kind)
                continue
            inner = component.nested.get(name)
            if inner is not None and isinstance(value, Mapping):
                factory_inner = _factory_of(inner, value.get("name"))
                self.key(indent, name, None, helps.get(name), _summary(factory_inner))
                self.options(value, inner, factory_inner, indent + 1)
            elif isinstance(value, Mapping) and value:
                self.key(indent, name, None, helps.get(name), types.get(name))
                for key, item in value.items():
                    self.key(indent + 1, key, _scalar(item), None, describe_type(type(item)))
            else:
                kind = types.get(name) or describe_type(type(value))
                self.key(indent, name, _scalar(value), helps.get(name), kind)


def _summary(obj: Any) -> str | None:
    """The first sentence of ``obj``'s docstring (``None`` when it has none)."""
    if obj is None:
        return None
    return docstring_summary(obj) or None


@dataclasses.dataclass(frozen=True)
class AnnotatedConfig:
    """A config as commented YAML, and how many of its keys have prose help (the rest show their type)."""

    text: str
    keys: int
    with_prose: int


def annotated_yaml(
    config: Any, title: str = "", fallback: Mapping[str, str] | None = None
) -> AnnotatedConfig:
    """``config`` (a resolved config dataclass) as YAML with a comment on every key; ``fallback``: the help
    of top-level keys that the config's class does not document (keys every task's config shares)."""
    writer = _Writer(fallback or {})
    writer.section(0, title)
    writer.dataclass(config, 0)
    return AnnotatedConfig("\n".join(writer.lines) + "\n", writer.keys, writer.with_prose)
