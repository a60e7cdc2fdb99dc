"""YAML -> typed config tree, with dotted overrides and errors that name the key.

A config is a tree of dataclasses (one per section, defined next to the code that uses them, e.g.
``vltk.tasks.captioning.system.CaptioningConfig``). Sections that select a registered component are *specs*:
plain mappings with a ``name`` whose other keys are validated against that component's constructor signature
(``vltk.registry.check_spec``); a dataclass field marks such a section with ``spec_field(validator)``.

Rules, checked when the config is loaded (before anything is built or trained):

- unknown keys are errors, and the nearest valid key is suggested;
- values must match the field's type (``--set trainer.max_epochs=abc`` is rejected);
- every default is written out in the resolved config, so a run directory records every value used.

A config file may inherit another: ``base: default`` (a shipped config of the same task) or ``base: PATH``
plus the keys that differ; :func:`read_config` expands the chain before overrides and validation, so the
resolved config has no ``base`` key.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vltk.errors import ConfigError, closest
from vltk.registry import describe_type, type_matches

T = TypeVar("T")
logger = logging.getLogger(__name__)
SpecValidator = Callable[[Mapping[str, Any], str], dict[str, Any]]


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


def spec_field(validator: SpecValidator, default: Mapping[str, Any] | None = None) -> Any:
    """A dataclass field holding a component spec, validated (and resolved) by ``validator(spec, path)``."""
    default = dict(default or {})
    return dataclasses.field(default_factory=lambda: dict(default), metadata={"spec": validator})


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place; returns it.

    Setting a section's ``name`` to another component (``--set data.name=karpathy``) starts that section
    afresh: the file's options were written for the old component, so only ``name`` and the section's
    other ``--set`` overrides are kept (``name`` overrides are applied first, whatever their order).
    """
    parsed = [_parse_override(override) for override in overrides]
    parsed.sort(key=lambda item: item[0][-1] != "name")  # stable: switches first
    for keys, value, override in parsed:
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(f"override '{override}': '{where}' is a value, not a section")
            node = child
        if keys[-1] == "name" and len(keys) > 1 and node.get("name") not in (None, value):
            dropped = sorted(k for k in node if k != "name")
            if dropped:
                logger.warning(
                    "--set %s switches component; these %s options from the config file are not used: %s",
                    override,
                    ".".join(keys[:-1]),
                    ", ".join(dropped),
                )
            node.clear()
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


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types; ``path`` prefixes messages."""
    data = {} if data is None else data
    where = path or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            hint = closest(str(key), fields)
            did_you_mean = f"; did you mean '{_join(path, hint)}'?" if hint else ""
            raise ConfigError(
                f"unknown config key '{_join(path, str(key))}'{did_you_mean} (valid keys in {where}: "
                f"{', '.join(fields)})"
            )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = _join(path, name)
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required config key '{key_path}'")
            if "spec" not in field.metadata:
                continue
            value = field.default_factory()  # type: ignore[misc]
        else:
            value = data[name]
        values[name] = _convert(value, hints[name], field, key_path)
    return cls(**values)


def _convert(value: Any, hint: Any, field: dataclasses.Field, key_path: str) -> Any:
    if "spec" in field.metadata:
        return field.metadata["spec"](value, key_path)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key_path)
    if not type_matches(value, hint):
        raise ConfigError(f"{key_path} = {value!r} has the wrong type: expected {describe_type(hint)}")
    if hint is float and isinstance(value, int):
        return float(value)
    return value


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
) -> T:
    """Read ``path`` with its ``base:`` chain (:func:`read_config`; or start from ``base``), apply ``--set``
    overrides, validate into ``cls``."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = read_config(path, shipped)
    apply_overrides(data, overrides)
    return from_dict(cls, data)
