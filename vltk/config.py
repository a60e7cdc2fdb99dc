"""YAML -> typed config tree, with dotted overrides and errors that name the key.

A config is a tree of dataclasses (one per section, defined next to the code that uses them, e.g.
``vltk.tasks.captioning.system.CaptioningConfig`` and its model section
``vltk.tasks.captioning.model.CaptionerConfig``), checked by one function, :func:`from_dict`. A field is

- a plain typed value (``max_epochs: int = 10``), or a nested dataclass section;
- a *component spec*, ``spec_field(REGISTRY, default)``: a mapping ``{name, **options}`` whose options are
  checked against the signature of ``REGISTRY[name]`` (``vltk.registry.check_spec``) and completed with its
  defaults; ``wired`` options come from the code and may not be set, ``nested`` options are specs of their
  own (a decoder's ``attention``), checked the same way with their path;
- or the *options* of the component the section's own ``name`` chooses, ``options_field(REGISTRY)`` (the
  captioner's ``decoder`` options belong to the decoder ``model.name`` names).

Rules, checked when the config is loaded (before anything is built or trained):

- unknown keys are errors, and the nearest valid key is suggested, in one wording for every kind of section
  (``unknown config key 'model.decoder.hiden_dim'; did you mean 'model.decoder.hidden_dim'?``);
- values must match the field's type (``--set trainer.max_epochs=abc`` is rejected);
- every default is written out in the resolved config, so a run directory records every value used;
- a key that vltk sets itself (a dataclass's ``MANAGED``: key -> where to set it instead) is an error
  saying so;
- a renamed key (a dataclass's ``RENAMED``) is an error telling the new spelling, except in a checkpoint's
  config (``from_dict(..., old_keys=True)``), where it is translated;
- ``--set section.name=other`` switches a component: the section's options from the file that the new
  component takes are kept; those it does not take are dropped, with one warning naming them.

A config file may inherit another: ``base: default`` (a shipped config of the same task) or ``base: PATH``
plus the keys that differ; :func:`read_config` expands the chain before overrides and validation, so the
resolved config has no ``base`` key.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vltk.errors import ConfigError
from vltk.registry import (
    accepted_keys,
    describe_type,
    kind_of,
    resolve,
    resolved_spec,
    type_matches,
    unknown_key_message,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 needs a dot: ``1.0e-3``)."""


_FLOAT = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$")
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str, source: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        first_line = str(error).strip().splitlines()
        raise ConfigError(
            f"{source}: not valid YAML ({' '.join(line.strip() for line in first_line)})"
        ) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


BASE_KEY = "base"
ShippedConfig = Callable[[str], Path]
"""A task's shipped config by name (``default`` -> ``configs/<task>/default.yaml``); a ConfigError if none."""


def read_config(path: str | Path, shipped: ShippedConfig | None = None) -> dict[str, Any]:
    """Read a config file and expand its ``base:`` chain into one mapping without a ``base`` key.

    ``base: NAME`` (no ``/``, no ``.yaml``) names a shipped config of the same task (``shipped(NAME)``;
    without ``shipped``, the file ``NAME.yaml`` beside this one); any other value is a path, relative to the
    directory of the file that names it. The file's keys are merged over its base's (:func:`merge_config`);
    a base may have a base; a cycle is an error that names the files in order.
    """
    return _read_with_bases(Path(path), shipped, ())


def _read_with_bases(path: Path, shipped: ShippedConfig | None, chain: tuple[Path, ...]) -> dict[str, Any]:
    data = read_yaml(path)
    if BASE_KEY not in data:
        return data
    base_path = _base_path(path, data.pop(BASE_KEY), shipped)
    chain = (*chain, path)
    if any(base_path.resolve() == seen.resolve() for seen in chain):
        raise ConfigError(f"config base cycle: {' -> '.join(str(p) for p in (*chain, base_path))}")
    return merge_config(_read_with_bases(base_path, shipped, chain), data)


def _base_path(path: Path, base: Any, shipped: ShippedConfig | None) -> Path:
    """The file that ``base: <base>`` in the config file ``path`` names."""
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(
            f"{path}: base must be the name of a shipped config (base: default) or a path to a YAML file, "
            f"got {base!r}"
        )
    is_name = "/" not in base and "\\" not in base and not base.endswith((".yaml", ".yml"))
    if is_name and shipped is not None:
        try:
            return shipped(base)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    candidate = path.parent / (f"{base}.yaml" if is_name else Path(base).expanduser())
    if not candidate.is_file():
        raise ConfigError(f"{path}: base '{base}' not found (no file {candidate})")
    return candidate


def merge_config(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """``child``'s keys over ``base``'s, recursively; neither input is changed.

    Mappings merge key by key. Anything else (a scalar, a list, ``null``) replaces the base's value. A
    section whose ``name`` differs from the base section's ``name`` (another component) replaces that
    section whole: the base's options were written for the other component.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in child.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping) and not _switches_component(old, value):
            merged[key] = merge_config(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _switches_component(base: Mapping[str, Any], child: Mapping[str, Any]) -> bool:
    return "name" in base and "name" in child and base["name"] != child["name"]


@dataclasses.dataclass(frozen=True)
class Component:
    """How a config section configures a registered component.

    Attributes:
        registry: name -> class or builder (a :class:`vltk.registry.Registry`); the constructor's keyword
            arguments are the section's options.
        wired: keyword arguments the code derives from other parts (``vocab_size``); configs may not set them.
        nested: options that are component specs themselves (``{"attention": Component(ATTENTIONS, ...)}``),
            checked and completed the same way, with their path; ``null`` stays ``null``.
    """

    registry: Mapping[str, Callable[..., Any]]
    wired: tuple[str, ...] = ()
    nested: Mapping[str, Component] = dataclasses.field(default_factory=dict)


def spec_field(
    registry: Mapping[str, Callable[..., Any]],
    default: Mapping[str, Any] | None = None,
    *,
    wired: Sequence[str] = (),
    nested: Mapping[str, Component] | None = None,
) -> Any:
    """A dataclass field holding a spec ``{name, **options}`` of a ``registry`` component.

    ``default`` is the spec of an absent, empty or ``null`` section; a spec without a ``name`` takes the
    default's, and a bare string is a name (``decoder: generative``).
    """
    component = Component(registry, tuple(wired), dict(nested or {}))
    default = dict(default or {})
    return dataclasses.field(default_factory=lambda: dict(default), metadata={"component": component})


def options_field(
    registry: Mapping[str, Callable[..., Any]],
    *,
    wired: Sequence[str] = (),
    nested: Mapping[str, Component] | None = None,
) -> Any:
    """A dataclass field holding the options (no ``name``) of ``registry[section.name]``, the component
    that the section's ``name`` field chooses; the section's ``name`` must come before this field."""
    component = Component(registry, tuple(wired), dict(nested or {}))
    return dataclasses.field(default_factory=dict, metadata={"component": component, "chosen_by_name": True})


def _same(value: Any) -> Any:
    return value


@dataclasses.dataclass(frozen=True)
class Renamed:
    """A config key that was renamed: ``new`` holds ``convert(old value)``.

    A dataclass section lists its renamed keys in a class variable, ``RENAMED: ClassVar[dict[str, Renamed]]
    = {"blind": Renamed("use_image", operator.not_)}``. A config file that says the old key gets an error
    telling the new spelling; a checkpoint's config, read with ``from_dict(..., old_keys=True)``, is
    translated, so checkpoints written before the rename still load.
    """

    new: str
    convert: Callable[[Any], Any] = _same


class _Switched(dict):
    """A section whose ``name`` a ``--set`` override (``override``) changed.

    ``carried`` holds the key paths (tuples, relative to the section) that came from the config file and
    that no later override set: options written for the old component. :func:`from_dict`, which knows the
    section's registry, keeps those the new component takes and drops the others with one warning.
    """

    def __init__(self, section: Mapping[str, Any], override: str) -> None:
        super().__init__(section)
        self.override = override
        self.carried = set(_key_paths(section)) - {("name",)}

    def set_by_override(self, path: tuple[str, ...]) -> None:
        """An override set ``path`` (and everything below it): those keys are the user's, not carried."""
        self.carried = {key for key in self.carried if key[: len(path)] != path and path[: len(key)] != key}


def _unmarked(value: Any) -> Any:
    """``value`` with every :class:`_Switched` mapping in it a plain dict again (what configs hold)."""
    if isinstance(value, dict):
        return {key: _unmarked(item) for key, item in value.items()}
    return value


def _key_paths(section: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in section.items():
        yield (*prefix, key)
        if isinstance(value, Mapping):
            yield from _key_paths(value, (*prefix, key))


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place; returns it.

    Setting a section's ``name`` to another component (``--set data.name=text``) marks the section as
    switched (``name`` overrides are applied first, whatever their order): when the config is validated,
    the file's options that the new component takes are kept and the others dropped with a warning
    (:func:`from_dict`); options given with ``--set`` are always the user's and checked as usual.
    """
    parsed = [_parse_override(override) for override in overrides]
    parsed.sort(key=lambda item: item[0][-1] != "name")  # stable: switches first
    for keys, value, override in parsed:
        parent, node = None, data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(f"override '{override}': '{where}' is a value, not a section")
            if isinstance(child, _Switched):
                child.set_by_override(tuple(keys[depth + 1 :]))
            parent, node = node, child
        if keys[-1] == "name" and parent is not None and node.get("name") != value:
            if isinstance(node, _Switched):
                node.override = override
            else:
                node = parent[keys[-2]] = _Switched(node, override)
        node[keys[-1]] = value
    return data


def _parse_override(override: str) -> tuple[list[str], Any, str]:
    if "=" not in override:
        raise ConfigError(f"override '{override}' must look like key.path=value (e.g. trainer.max_epochs=5)")
    dotted, raw_value = override.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override '{override}' has an empty key")
    return keys, parse_yaml(raw_value, f"--set {override}"), override


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "", *, old_keys: bool = False) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types; ``path`` prefixes messages.

    Args:
        cls: the section's dataclass.
        data: the section's mapping (``None``: every default).
        path: the section's dotted path (``model``), for messages.
        old_keys: translate renamed keys (a checkpoint's config written before the rename) instead of
            rejecting them.
    """
    data = {} if data is None else data
    where = path or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    switched = data if isinstance(data, _Switched) else None
    data = _translate_renamed(cls, data, path, old_keys)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    managed: Mapping[str, str] = getattr(cls, "MANAGED", {})
    for key in data:
        if key in managed:
            raise ConfigError(f"config key '{_join(path, str(key))}' is not a setting: {managed[key]}")
        if key not in fields:
            raise ConfigError(unknown_key_message(path, str(key), list(fields), where))
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        component = field.metadata.get("component")
        if name in data:
            value = data[name]
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required config key '{key_path}'")
        elif component is not None:
            value = field.default_factory()  # type: ignore[misc]
        elif dataclasses.is_dataclass(hints[name]):  # the default section, checked and completed
            value = to_dict(field.default_factory())  # type: ignore[misc]
        else:
            continue
        if component is None:
            values[name] = _convert(value, hints[name], key_path, old_keys)
        elif field.metadata.get("chosen_by_name"):
            chooser = values.get("name", fields["name"].default if "name" in fields else None)
            carried = (
                {key[1] for key in switched.carried if len(key) == 2 and key[0] == name} if switched else ()
            )
            values[name] = _resolve_options(
                component, value, chooser, key_path, _join(path, "name"), carried, switched
            )
        else:
            values[name] = _resolve_spec(component, value, key_path, field.default_factory())  # type: ignore[misc]
    return cls(**values)


def _translate_renamed(cls: type, data: Mapping[str, Any], path: str, old_keys: bool) -> Mapping[str, Any]:
    renamed: Mapping[str, Renamed] = getattr(cls, "RENAMED", {})
    old = [key for key in data if key in renamed]
    if not old:
        return data
    if not old_keys:
        key, value = old[0], data[old[0]]
        new = renamed[key].new
        raise ConfigError(
            f"config key '{_join(path, key)}' is now spelled '{_join(path, new)}': write "
            f"'{new}: {json.dumps(renamed[key].convert(value))}' instead of '{key}: {json.dumps(value)}'"
        )
    translated = {key: value for key, value in data.items() if key not in renamed}
    for key in old:
        translated.setdefault(renamed[key].new, renamed[key].convert(data[key]))
    return translated


def _convert(value: Any, hint: Any, key_path: str, old_keys: bool) -> Any:
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key_path, old_keys=old_keys)
    if not type_matches(value, hint):
        raise ConfigError(f"{key_path} = {value!r} has the wrong type: expected {describe_type(hint)}")
    if hint is float and isinstance(value, int):
        return float(value)
    return _unmarked(value)


def _as_spec(value: Any, default: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A spec as a mapping with a ``name``: absent/empty -> ``default``, a string -> its name."""
    if value is None or (isinstance(value, Mapping) and not value):
        return dict(default)
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping with a 'name' (or a name), got {value!r}")
    if "name" not in value and "name" in default:
        return {"name": default["name"], **value}
    return dict(value)


def _resolve_spec(component: Component, value: Any, path: str, default: Mapping[str, Any]) -> dict[str, Any]:
    """A component spec checked against its constructor and completed with its defaults."""
    switched = value if isinstance(value, _Switched) else None
    spec = _as_spec(value, default, path)
    if switched is not None and "name" in spec:
        factory = resolve(component.registry, spec["name"], f"{kind_of(component.registry)} at {path}.name")
        carried = {key[0] for key in switched.carried if len(key) == 1}
        spec = _drop_unaccepted(spec, factory, component, carried, path, switched.override)
    return _complete(component, spec, path)


def _resolve_options(
    component: Component,
    value: Any,
    name: Any,
    path: str,
    name_path: str,
    carried: typing.Collection[str],
    switched: _Switched | None,
) -> dict[str, Any]:
    """The options of ``registry[name]`` (the section's ``name`` chooses the component), completed."""
    options = {} if value is None else value
    if not isinstance(options, Mapping):
        raise ConfigError(f"{path}: expected a mapping of the options of '{name}', got {value!r}")
    if "name" in options:
        what = path.rsplit(".", 1)[-1]
        raise ConfigError(f"{path}.name: the {what} is chosen by {name_path} ('{name}')")
    factory = resolve(component.registry, name, f"{kind_of(component.registry)} at {name_path}")
    spec = {"name": name, **options}
    if switched is not None:
        spec = _drop_unaccepted(spec, factory, component, carried, path, switched.override)
    resolved = _complete(component, spec, path)
    resolved.pop("name")
    return resolved


def _complete(component: Component, spec: Mapping[str, Any], path: str) -> dict[str, Any]:
    resolved = resolved_spec(component.registry, spec, path=path, wired=component.wired)
    for key, inner in component.nested.items():
        if resolved.get(key) is not None:
            resolved[key] = _resolve_spec(inner, resolved[key], f"{path}.{key}", {})
    return _unmarked(resolved)


def _drop_unaccepted(
    spec: dict[str, Any],
    factory: Callable[..., Any],
    component: Component,
    carried: typing.Collection[str],
    path: str,
    override: str,
) -> dict[str, Any]:
    """``spec`` less the options carried from the config file that ``factory`` does not take (a warning
    names them)."""
    accepted = set(accepted_keys(factory, component.wired))
    dropped = [key for key in spec if key != "name" and key in carried and key not in accepted]
    if dropped:
        logger.warning(
            "--set %s: %s '%s' does not take %s (set for the previous one); dropped them",
            override,
            kind_of(component.registry),
            spec["name"],
            ", ".join(f"{path}.{key}" for key in dropped),
        )
    return {key: value for key, value in spec.items() if key not in dropped}


def _join(path: str, key: str | None) -> str:
    return f"{path}.{key}" if path else str(key)


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain dicts/lists/scalars (what is saved in run dirs and checkpoints)."""
    return dataclasses.asdict(config)


def dump_yaml(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
    shipped: ShippedConfig | None = None,
    old_keys: bool = False,
) -> T:
    """Read ``path`` with its ``base:`` chain (:func:`read_config`; or start from ``base``), apply ``--set``
    overrides, validate into ``cls``; ``old_keys`` translates renamed keys (a config that vltk wrote, such
    as a run directory's ``config.yaml``)."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = read_config(path, shipped)
    apply_overrides(data, overrides)
    return from_dict(cls, data, old_keys=old_keys)
