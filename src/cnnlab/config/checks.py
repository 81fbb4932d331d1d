"""Value checks of config, sweep and search files: each returns the cleaned value or
raises ValueError, and says in ``.allowed`` what passes (shown in errors and the key
reference)."""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable
from dataclasses import field
from typing import Any

Check = Callable[[Any], Any]


def allowing(allowed: str) -> Callable[[Check], Check]:
    """Attach the text of what a check allows (shown in errors and the key reference)."""
    def attach(check: Check) -> Check:
        check.allowed = allowed  # type: ignore[attr-defined]
        return check

    return attach


def whole(minimum: int = 0, maximum: int | None = None) -> Check:
    allowed = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")

    @allowing(allowed)
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum or (
                maximum is not None and v > maximum):
            raise ValueError(allowed)
        return v

    return check


MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds up to this


def number(low: float, high: float | None = None, high_inclusive: bool = False) -> Check:
    allowed = f"a number >= {low}" + (
        f" and {'<=' if high_inclusive else '<'} {high}" if high is not None else "")

    @allowing(allowed)
    def check(v: Any) -> float:
        if isinstance(v, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                raise ValueError(allowed) from None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(allowed)
        v = float(v)
        if v != v or v < low or (high is not None and (v > high if high_inclusive else v >= high)):
            raise ValueError(allowed)
        return v

    return check


def one_of(*options: Any) -> Check:
    @allowing("one of " + ", ".join(map(str, options)))
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise ValueError(check.allowed)
        return v

    return check


@allowing("true or false")
def flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


@allowing("a name of letters, digits, '_', '.' or '-' (no spaces or '/')")
def identifier(v: Any) -> str:
    # Keras rejects model names outside [A-Za-z0-9.][A-Za-z0-9_.\\/>-]* (a ValueError at build time)
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
        raise ValueError(identifier.allowed)
    return v


@allowing("a non-empty string")
def text(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError("a non-empty string")
    return v


def auto_or(inner: Check) -> Check:
    @allowing(f"auto or {inner.allowed}")
    def check(v: Any) -> Any:
        if v == "auto":
            return v
        try:
            return inner(v)
        except ValueError:
            raise ValueError(check.allowed) from None

    return check


def optional(inner: Check) -> Check:
    @allowing(f"{inner.allowed}, or null")
    def check(v: Any) -> Any:
        return None if v is None else inner(v)

    return check


def list_of(inner: Check, min_len: int, allowed: str) -> Check:
    @allowing(allowed)
    def check(v: Any) -> tuple:
        if not isinstance(v, list | tuple) or len(v) < min_len:
            raise ValueError(allowed)
        try:
            return tuple(inner(x) for x in v)
        except ValueError:
            raise ValueError(allowed) from None

    return check


def scalar_or_list(inner: Check, allowed: str) -> Check:
    listed = list_of(inner, 1, allowed)

    @allowing(allowed)
    def check(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return listed(v)
        try:
            return inner(v)
        except ValueError:
            raise ValueError(allowed) from None

    return check


def per_conv(inner: Check, allowed: str) -> Check:
    """One value for all blocks, one per block, or per block one list with a value per
    convolution of that block (lengths are checked against model.filters later)."""
    entry = scalar_or_list(inner, allowed)

    @allowing(allowed)
    def check(v: Any) -> Any:
        if isinstance(v, list | tuple):
            if not v:
                raise ValueError(allowed)
            return tuple(entry(x) for x in v)
        try:
            return inner(v)
        except ValueError:
            raise ValueError(allowed) from None

    return check


_SHOWN = reprlib.Repr()
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlevel = 60, 60, 3


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, shortened (bounded work even for a
    YAML alias bomb)."""
    return _SHOWN.repr(value)


def setting(default: Any, check: Check, meaning: str) -> Any:
    """A config key: its default, its check and what it means, defined in one place."""
    return field(default=default, metadata={"check": check, "meaning": meaning})


# --- the schema ---


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
