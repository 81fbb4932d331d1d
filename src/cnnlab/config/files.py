"""Config files: YAML in and out, ``--set`` overrides, built-in config names and the key
reference (``cnnlab config --keys``, docs/config.md)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from cnnlab.config.checks import identifier, shown
from cnnlab.config.schema import (
    ALL_KEYS,
    FIELDS,
    SCHEMA,
    SECTIONS,
    Config,
    check_keys,
    closest_key,
    config_from_dict,
    format_value,
    merge,
)
from cnnlab.errors import ConfigError

BUILTIN_CONFIG_DIR = Path(__file__).parent / "builtin"


def reference() -> str:
    """Every config key as a Markdown table (``cnnlab config --keys``, ``docs/config.md``)."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for section, keys in FIELDS.items():
        for key, spec in keys.items():
            dotted = f"{section}.{key}" if section else key
            cells = [f"`{dotted}`", f"`{format_value(spec.default)}`",
                     spec.metadata["check"].allowed, spec.metadata["meaning"]]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``--set KEY=VALUE``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected KEY=VALUE, e.g. --set train.epochs=5")
    key, _, value_text = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set '{text}': the key is empty; e.g. --set train.epochs=5")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"--set {key}: cannot read value {shown(value_text)} as YAML ({problem})"
        ) from None
    return key, value


def check_key(key: Any, where: str) -> str:
    """``key`` if it is a dotted config key (``train.epochs``, ``seed``); else ConfigError
    with a "did you mean" hint."""
    if not isinstance(key, str):
        raise ConfigError(f"{where}: key {shown(key)} is not a dotted config key like "
                          "train.epochs")
    section, _, leaf = key.rpartition(".")
    if key in SCHEMA[""] or (section in SECTIONS and leaf in SCHEMA[section]):
        return key
    if key in SECTIONS:
        raise ConfigError(f"{where}: '{key}' is a section; give one of its keys, e.g. "
                          f"{next(k for k in ALL_KEYS if k.startswith(key + '.'))}")
    raise ConfigError(f"{where}: unknown key '{key}'; {closest_key(key)}")


def check_name(value: Any, where: str) -> str:
    """A run, sweep or variant name usable in folder names; ConfigError otherwise."""
    try:
        return identifier(value)
    except ValueError as allowed:
        raise ConfigError(f"{where}: got {shown(value)}; expected {allowed}") from None


def overrides_to_dict(overrides: Iterable[str] | Mapping[str, Any],
                      where: str = "--set") -> dict[str, Any]:
    """Turn ``["a.b=1", ...]`` (or ``{"a.b": 1}``) into a nested dict; keys are checked."""
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    nested: dict[str, Any] = {}
    for key, value in pairs:
        if key not in SECTIONS:  # a whole section is checked as a mapping by load_config
            check_key(key, f"{where} {key}" if where == "--set" else where)
        parts = key.split(".")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{where} {key}: '{part}' was set to {shown(target)} by an "
                                  f"earlier {where}; set keys of a section, not the section")
        target[parts[-1]] = value
    return nested


def resolve_path(name_or_path: str | Path, builtin_dir: Path, what: str) -> Path:
    """A YAML file path as given, or a built-in one by name (``best``, ``batch-size``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a {what} YAML file")
    builtin = builtin_dir / f"{path.stem if path.suffix else path.name}.yaml"
    if path.parent == Path(".") and builtin.exists():
        return builtin
    known = sorted(p.stem for p in builtin_dir.glob("*.yaml"))
    close = difflib.get_close_matches(path.stem, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if path.parent == Path(".") and close else ""
    raise ConfigError(f"{path}: no such {what} file; {hint}give a YAML path or a built-in "
                      f"{what} name ({', '.join(known)})")


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config path as given, or a built-in config by name (``best``, ``baseline``)."""
    return resolve_path(name_or_path, BUILTIN_CONFIG_DIR, "config")


def read_yaml(path: Path) -> Any:
    """Safe-load a YAML file; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as "
                          "UTF-8 YAML") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path} line {mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}; fix the file") from None


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> Config:
    """Load a YAML config (or only defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    origin = "config"
    if path is not None:
        resolved = resolve_config_path(path)
        origin = str(path)
        loaded = read_yaml(resolved)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(
                f"{path}: expected a mapping of keys (data, model, train, ...), "
                f"got a {type(loaded).__name__}"
            )
        raw = dict(loaded)
        raw.setdefault("name", resolved.stem)
    update = overrides_to_dict(overrides)
    check_keys(update, "--set")
    return config_from_dict(merge(raw, update), origin)
