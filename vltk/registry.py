"""Registries of components and one way to build them from config specs, with errors a user can act on.

A *registry* (:class:`Registry`) maps names to classes or builder functions and knows what kind of component
it holds (``Registry("attention", {"additive": AdditiveAttention, ...})``); it reads like the literal dict it
wraps and lives in the subpackage of its components (see ``vltk/encoders/__init__.py``).
A *spec* is a mapping with a ``name`` and the constructor's keyword arguments::

    {"name": "additive", "dim": 256}

The constructor is the schema: :func:`check_spec` compares the spec's keys and value types with the
signature of ``registry[name]``; unknown keys are rejected with the nearest valid key named, and keys that
are *wired* (derived from other parts, such as ``query_dim`` read from the decoder just built) are
rejected in the spec because they would duplicate a value the code already knows. A class that gathers
keys shared with its siblings in ``**options`` names their dataclass in ``options_type`` (the DataModules'
``LoaderOptions``, see ``vltk.data.datamodule``): its fields are keyword parameters like the listed ones,
with their types and defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

from vltk.errors import ConfigError, closest, unknown_choice_message

V = TypeVar("V")
_FIRST_SENTENCE = re.compile(r"(?<=[a-z)]\.)\s+(?=[A-Z])")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :mod:`vltk.x` -> vltk.x


class Registry(Mapping[str, V]):
    """Components of one kind by name: a read-only mapping that knows its ``kind`` for messages and listings.

    Every set of components a user picks by name (a config's ``name``, a task on the command line) is a
    ``Registry``, defined in the subpackage of its components; ``vltk list`` shows every one of them
    (:func:`vltk.tasks.registries.all_registries` names them all).

    Args:
        kind: what the components are, in words (``"attention"``, ``"caption dataset"``); error messages and
            ``vltk list`` use it.
        entries: name -> class or builder function (for ``TASKS``: name -> task entry).
    """

    def __init__(self, kind: str, entries: Mapping[str, V]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> V:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"

    def describe(self, name: str) -> str:
        """One line about ``registry[name]``: its ``description`` attribute if it is a string, else the first
        sentence of its own docstring without reST markup ('' when it has none)."""
        entry = self._entries[name]
        description = getattr(entry, "description", None)
        return " ".join(description.split()) if isinstance(description, str) else docstring_summary(entry)


def docstring_summary(obj: Any) -> str:
    """The first sentence of ``obj``'s own docstring (not inherited), on one line, without reST markup
    (``:mod:`vltk.x``` reads ``vltk.x``); '' when it has none."""
    paragraph = inspect.cleandoc(getattr(obj, "__doc__", None) or "").split("\n\n", 1)[0]
    plain = _ROLE.sub(r"\1", paragraph).replace("``", "")
    return " ".join(_FIRST_SENTENCE.split(plain, maxsplit=1)[0].rstrip(":").split())


def kind_of(registry: Mapping[str, Any]) -> str:
    """What a registry holds, in words (its ``kind``; ``"component"`` for a plain mapping)."""
    return getattr(registry, "kind", "component")


def _kind(registry: Mapping[str, Any], what: str | None) -> str:
    return what if what is not None else kind_of(registry)


def unknown_key_message(path: str, key: str, valid: Sequence[str], where: str) -> str:
    """The one wording of an unknown config key, for dataclass sections and component specs alike::

        unknown config key 'model.decoder.hiden_dim'; did you mean 'model.decoder.hidden_dim'?
        (valid keys in model.decoder: embed_dim, hidden_dim, ...)

    Args:
        path: the dotted path of the section holding ``key`` (``""`` at the top level).
        key: the unknown key.
        valid: the section's valid keys.
        where: how the message names the section (``model.decoder``, ``data (caption dataset 'shapes')``).
    """

    def dotted(name: str) -> str:
        return f"{path}.{name}" if path else name

    hint = closest(str(key), valid)
    did_you_mean = f"; did you mean '{dotted(hint)}'?" if hint else ""
    return (
        f"unknown config key '{dotted(str(key))}'{did_you_mean} (valid keys in {where}: {', '.join(valid)})"
    )


def resolve(
    registry: Mapping[str, Callable[..., Any]], name: str, what: str | None = None
) -> Callable[..., Any]:
    """``registry[name]`` or a :class:`ConfigError` that lists the valid names."""
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(unknown_choice_message(_kind(registry, what), str(name), registry))
    return registry[name]


def _options_type(factory: Callable[..., Any]) -> type | None:
    """The dataclass a class's constructor gathers its ``**options`` into (``factory.options_type``), if any:
    its fields are keyword parameters of the constructor like the listed ones (see
    ``vltk.data.datamodule``)."""
    options = getattr(factory, "options_type", None) if inspect.isclass(factory) else None
    if options is None or not dataclasses.is_dataclass(options):
        return None
    takes_options = any(
        p.kind is p.VAR_KEYWORD for p in inspect.signature(factory.__init__).parameters.values()
    )
    return options if takes_options else None


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    signature = inspect.signature(target)
    params = {
        name: param
        for name, param in signature.parameters.items()
        if name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
    }
    options = _options_type(factory)
    for field in dataclasses.fields(options) if options is not None else ():
        if field.init and field.name not in params:
            default = _field_default(field)
            params[field.name] = inspect.Parameter(
                field.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=field.type
            )
    return params


def accepted_keys(factory: Callable[..., Any], wired: tuple[str, ...] = ()) -> list[str]:
    """The keyword arguments a config spec may give ``factory`` (its signature's, less the ``wired`` ones)."""
    return [name for name in _parameters(factory) if name not in wired]


def constructor_type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The type hints of ``factory``'s keyword arguments (its ``options_type``'s fields included)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    options = _options_type(factory)
    try:
        hints = typing.get_type_hints(target)
        return {**typing.get_type_hints(options), **hints} if options is not None else hints
    except Exception:  # unresolvable forward references: fall back to no type checks
        return {}


def type_matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a type hint (int, float, str, bool, Optional, Literal, list, dict)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(type_matches(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(hint)
        if not args or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
            inner = args[0] if args else Any
            return all(type_matches(v, inner) for v in value)
        if origin is tuple:
            return len(args) == len(value) and all(map(type_matches, value, args))
        return all(type_matches(v, args[0]) for v in value)
    if origin in (dict, typing.Mapping) or hint in (dict,):
        return isinstance(value, Mapping)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe_type(hint: Any) -> str:
    """A type hint as a user reads it: ``'auto' | true | false``, ``int | None``, ``list[int]``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe_type(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if origin is not None:  # list[int], dict[str, Any]: the hint's own spelling
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_spec(
    registry: Mapping[str, Callable[..., Any]],
    spec: Mapping[str, Any],
    path: str,
    what: str | None = None,
    wired: tuple[str, ...] = (),
) -> Callable[..., Any]:
    """Validate ``spec`` against ``registry[spec['name']]``'s signature; return the factory.

    Args:
        registry: a :class:`Registry` (or any mapping) of name -> class or function.
        spec: ``{"name": ..., **kwargs}`` from the config.
        path: dotted config path of the spec, used in messages (``model.attention``).
        what: the kind of component, used in messages (default: the registry's ``kind``).
        wired: keyword arguments the caller derives from other parts; they may not appear in ``spec``.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{path}: expected a mapping with a 'name', got {spec!r}")
    if "name" not in spec:
        raise ConfigError(f"{path}.name is missing (choices: {', '.join(sorted(registry))})")
    what = _kind(registry, what)
    factory = resolve(registry, spec["name"], f"{what} at {path}.name")
    params = _parameters(factory)
    hints = constructor_type_hints(factory)
    configurable = [p for p in params if p not in wired]
    for key, value in spec.items():
        if key == "name":
            continue
        if key in wired:
            raise ConfigError(
                f"{path}.{key} is derived from other parts of the model and cannot be set in the config"
            )
        if key not in params:
            where = f"{path} ({what} '{spec['name']}')"
            raise ConfigError(unknown_key_message(path, key, configurable, where))
        hint_type = hints.get(key, params[key].annotation)
        if not type_matches(value, hint_type):
            raise ConfigError(
                f"{path}.{key} = {value!r} has the wrong type: expected {describe_type(hint_type)}"
            )
    missing = [
        name
        for name, param in params.items()
        if param.default is inspect.Parameter.empty and name not in spec and name not in wired
    ]
    if missing:
        raise ConfigError(f"{path} is missing required key(s): {', '.join(missing)}")
    return factory


def build(
    registry: Mapping[str, Callable[..., Any]],
    spec: Mapping[str, Any],
    *,
    path: str = "spec",
    what: str | None = None,
    **wired: Any,
) -> Any:
    """Build ``registry[spec['name']](**spec_kwargs, **wired)`` after :func:`check_spec`.

    Example::

        attention = build(ATTENTIONS, {"name": "additive", "dim": 256},
                          path="model.attention", query_dim=512, key_dim=2048)
    """
    factory = check_spec(registry, spec, path, what, wired=tuple(wired))
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return factory(**kwargs, **wired)


def resolved_spec(
    registry: Mapping[str, Callable[..., Any]],
    spec: Mapping[str, Any],
    *,
    path: str,
    what: str | None = None,
    wired: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``spec`` checked and completed with the constructor's defaults (the *resolved* spec saved in runs).

    Ints given for float parameters become floats; tuples become lists so the result is plain YAML.
    """
    factory = check_spec(registry, spec, path, what, wired=wired)
    hints = constructor_type_hints(factory)
    resolved: dict[str, Any] = {"name": spec["name"]}
    for key, param in _parameters(factory).items():
        if key in wired:
            continue
        value = spec[key] if key in spec else param.default
        if value is inspect.Parameter.empty:
            continue
        if hints.get(key) is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        resolved[key] = list(value) if isinstance(value, tuple) else value
    return resolved
