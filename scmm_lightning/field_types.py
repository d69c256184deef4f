"""Run-time check of settings against their annotations.

The command line never needs it (jsonargparse checks every value against the annotation before it
builds the object), but Python callers do: ``FinetuneConfig(recipe="LPFT")`` ran the reference
recipe, ``cv_model="ensembel"`` reported the refit, ``engine="Loop"`` used the batched engine and
``SCMMPretraining(reconstruction_target="masked")`` reconstructed the masked input (the reference
implementation's defect), each silently, because the code compares strings with ``==``.
:func:`check_field_types` (the settings dataclasses) and :func:`check_arguments` with
:func:`init_hints` (the init arguments of the tasks, the evaluation callbacks and the datamodules,
shared and leaf) turn such a value into an error that names the setting as the CLI does, the value and what it
may be. The annotations are resolved once per class (``functools.cache``, read-only views):
resolving them each time made building a ``FinetuneConfig`` cost ~320 us; cached, ~45 us with the
check (this 2-core host, ``timeit``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import numpy as np

_INTEGERS = (int, np.integer)
_BOOLEANS = (bool, np.bool_)


def value_fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is a value of the annotation ``hint``: ``Literal``, unions, ``None``,
    ``bool``, ``int`` (not a bool), ``float`` (an int too), ``str``, ``list[T]`` and ``tuple[...]``
    (a list or a tuple of fitting items), a dataclass (an instance of it), and jsonargparse's range
    types (``PositiveFloat``, ``MaskRatio``: the base type, then the range). numpy scalars count as
    the Python kind they hold. Any other annotation is left to the code that uses it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _restricted(hint):  # jsonargparse's PositiveFloat, MaskRatio, ...: the base type, then the range
        if not value_fits(value, int if issubclass(hint, int) else float):
            return False
        try:
            hint(value)
        except (ValueError, TypeError):
            return False
        return True
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # e.g. finetune: FinetuneConfig
        return isinstance(value, hint)
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


def _restricted(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, (int, float)) and hint not in (int, float, bool)


def describe(hint: Any) -> str:
    """An annotation as the error message states it: ``one of 'refit', 'ensemble'``, ``int or None``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _restricted(hint):
        return f"{hint.__name__} ({hint.__doc__})" if hint.__doc__ else hint.__name__
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint)) if origin is None else str(hint)


def check_arguments(values: Mapping[str, Any], hints: Mapping[str, Any], prefix: str, owner: str) -> None:
    """Raise ``ValueError`` naming ``{prefix}.{name}``, its value and its annotation for the first of
    ``values`` whose annotation in ``hints`` it does not fit (names without one are not checked, so an
    ``__init__`` may pass its ``locals()``: ``self`` has none)."""
    for name, value in values.items():
        if name in hints and not value_fits(value, hints[name]):
            raise ValueError(
                f"{prefix}.{name}={value!r}: expected {describe(hints[name])} "
                f"(a value of type {type(value).__name__}); see the {owner} docstring"
            )


@functools.cache
def _field_hints(cls: type) -> Mapping[str, Any]:
    return types.MappingProxyType(typing.get_type_hints(cls))


def check_field_types(instance: Any, prefix: str) -> None:
    """:func:`check_arguments` over the fields of the dataclass ``instance``."""
    values = {field.name: getattr(instance, field.name) for field in dataclasses.fields(instance)}
    check_arguments(values, _field_hints(type(instance)), prefix, type(instance).__name__)


@functools.cache
def init_hints(cls: type, base: type) -> Mapping[str, Any]:
    """The annotations of the ``__init__`` arguments of ``cls`` and of its ancestors down to ``base``
    (a subclass's own annotation wins). A class whose annotations do not resolve (a name imported
    only for type checkers) adds none: its arguments go unchecked rather than the object unbuilt."""
    hints: dict[str, Any] = {}
    for ancestor in reversed(cls.__mro__):
        init = vars(ancestor).get("__init__")
        if init is None or not issubclass(ancestor, base):
            continue
        try:
            hints.update(typing.get_type_hints(init))
        except (NameError, TypeError):
            continue
    hints.pop("return", None)
    return types.MappingProxyType(hints)
