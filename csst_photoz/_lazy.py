"""Lazy package attributes: names that import their submodule on first use (PEP 562).

For packages whose submodules pull in heavy libraries (torch, matplotlib, scikit-learn), so that
``csst-photoz --help`` and light imports stay fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, sources: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazy names.

    Parameters
    ----------
    package
        The package's ``__name__``.
    sources
        Attribute name -> submodule (relative to the package) that defines it.
    names
        The package's ``__all__``.

    Returns
    -------
    getattr, dir
        Assign them to ``__getattr__`` and ``__dir__`` in the package's ``__init__``.
    """

    def get_attribute(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{source}"), name)
        setattr(sys.modules[package], name, value)  # cached: the next lookup is a plain one
        return value

    def list_attributes() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return get_attribute, list_attributes
