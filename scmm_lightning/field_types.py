"""Run-time check of a settings dataclass's fields against their annotations.

The command line never needs it (jsonargparse checks every value against the annotation before it
builds the object), but Python callers do: ``FinetuneConfig(recipe="LPFT")`` ran the reference
recipe, ``cv_model="ensembel"`` reported the refit and ``engine="Loop"`` the batched engine, each
silently, because the code compares strings with ``==``. :func:`check_field_types` turns such a value
into an error that names the setting, the value and what it may be.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

import numpy as np

_INTEGERS = (int, np.integer)
_BOOLEANS = (bool, np.bool_)


def value_fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is a value of the annotation ``hint``: ``Literal``, unions, ``None``,
    ``bool``, ``int`` (not a bool), ``float`` (an int too), ``str``, ``list[T]`` and ``tuple[...]``
    (a list or a tuple of fitting items). Any other annotation is left to the code that uses it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in args)
    if origin in (Union, types.UnionType):
        return any(value_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, _BOOLEANS)
    if hint is int:
        return isinstance(value, _INTEGERS) and not isinstance(value, _BOOLEANS)
    if hint is float:
        return isinstance(value, (*_INTEGERS, float, np.floating)) and not isinstance(value, _BOOLEANS)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, (list, tuple)) and all(value_fits(v, args[0]) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(value_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(value_fits(v, a) for v, a in zip(value, args))
    return True


def describe(hint: Any) -> str:
    """An annotation as the error message states it: ``one of 'refit', 'ensemble'``, ``int or None``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint)) if origin is None else str(hint)


def check_field_types(instance: Any, prefix: str) -> None:
    """Raise ``ValueError`` naming ``{prefix}.{field}``, its value and the annotation for the first
    field of the dataclass ``instance`` whose value does not fit its annotation."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        if not value_fits(value, hints[field.name]):
            raise ValueError(
                f"{prefix}.{field.name}={value!r}: expected {describe(hints[field.name])} "
                f"(a value of type {type(value).__name__}); see the {type(instance).__name__} docstring"
            )
