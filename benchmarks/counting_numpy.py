"""A counting stand-in for CuPy on the CPU: NumPy underneath, every array operation (a kernel
launch on a GPU) and every device-to-host synchronisation counted, per stage.

``counting(stage_names)`` patches the photometry package's ``array_module`` /
``ndimage_module`` / ``to_numpy`` so that arrays of :class:`CountingArray` get the counting
module as their ``xp``, as CuPy arrays get ``cupy``. Inside, the code runs unchanged on NumPy
(the catalogue is the same, which ``tests/benchmarks/test_launch_budget.py`` checks). Counted:

* launches: each call of an ``xp`` function or ufunc (and ufunc methods: ``add.at``,
  ``.reduce``), each operator and array method that computes (``a + b``, ``a.sum()``,
  ``a.astype``, copies), each gather/scatter indexing; with the bytes read and written;
* syncs: ``bool()``, ``int()``, ``float()``, ``.item()``, ``.tolist()``, ``__index__`` (loop
  bounds, shapes from data), iteration, boolean-mask indexing, and the functions whose CuPy
  docstring says "This function may synchronize the device" (``nonzero``, ``flatnonzero``,
  ``unique``, ``bincount``, one-argument ``where``, ``cupyx.scipy.ndimage.label``; CuPy
  14.2.0); ``to_numpy`` (the device-to-host copy, with its bytes);
* host-to-device copies (``xp.asarray`` of a host array) with their bytes;
* ``np.`` (not ``xp.``) functions applied to device arrays: on CuPy they raise or copy to the
  host, so each is a bug or a hidden sync.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import types
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.ndimage

#: CuPy 14.2.0 functions whose docstring warns "This function may synchronize the device"
#: (introspected from cupy-cuda13x 14.2.0; ``where`` only in its one-argument form).
SYNCING_FUNCTIONS = {"nonzero", "flatnonzero", "unique", "bincount", "argwhere", "label"}
#: Gathers and searches read a few entries of their first argument, not all of it: their bytes
#: are the indices (or queries) and the output.
SPARSE_READS = {"take_along_axis", "take", "searchsorted"}


@dataclass
class StageCounts:
    """What one stage did."""

    launches: Counter = field(default_factory=Counter)
    syncs: Counter = field(default_factory=Counter)
    bytes_moved: int = 0
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    numpy_on_device: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able totals and the per-operation counts."""
        return {
            "launches": sum(self.launches.values()),
            "syncs": sum(self.syncs.values()),
            "bytes_moved": self.bytes_moved,
            "h2d_bytes": self.h2d_bytes,
            "d2h_bytes": self.d2h_bytes,
            "launches_by_op": dict(self.launches.most_common()),
            "syncs_by_kind": dict(self.syncs.most_common()),
            "numpy_on_device": dict(self.numpy_on_device),
        }


class LaunchCounter:
    """The per-stage tallies of one counted run."""

    def __init__(self) -> None:
        self.stages: dict[str, StageCounts] = defaultdict(StageCounts)
        self.current = "other"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Attribute everything in the block to stage ``name``."""
        previous, self.current = self.current, name
        try:
            yield
        finally:
            self.current = previous

    @property
    def here(self) -> StageCounts:
        return self.stages[self.current]


COUNTER = LaunchCounter()


def _plain(value: Any) -> Any:
    if isinstance(value, CountingArray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, np.ndarray) and not isinstance(value, CountingArray):
        return value.view(CountingArray)
    if isinstance(value, np.generic):
        return np.asarray(value).view(CountingArray)  # CuPy gives 0-d device arrays
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _nbytes(values: Any) -> int:
    if isinstance(values, np.ndarray):
        return values.nbytes
    if isinstance(values, (list, tuple)):
        return sum(_nbytes(v) for v in values)
    if isinstance(values, dict):
        return sum(_nbytes(v) for v in values.values())
    return 0


def _launch(name: str, inputs: Any, outputs: Any) -> None:
    here = COUNTER.here
    here.launches[name] += 1
    here.bytes_moved += _nbytes(inputs) + _nbytes(outputs)


def _sync(kind: str, nbytes: int = 0) -> None:
    here = COUNTER.here
    here.syncs[kind] += 1
    here.d2h_bytes += nbytes


class CountingArray(np.ndarray):
    """A NumPy array that reports what a CuPy array would cost."""

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        plain_inputs = _plain(inputs)
        if "out" in kwargs:
            kwargs["out"] = _plain(kwargs["out"])
        result = getattr(ufunc, method)(*plain_inputs, **kwargs)
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        _launch(name, plain_inputs, result)
        return _wrap(result)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        COUNTER.here.numpy_on_device[f"np.{func.__name__}"] += 1
        result = func(*_plain(args), **_plain(kwargs))
        _launch(func.__name__, _plain(args), result)
        return _wrap(result)

    # ---- reads that bring data to the host
    def __bool__(self) -> bool:
        _sync("bool()", self.nbytes)
        return bool(self.view(np.ndarray))

    def __int__(self) -> int:
        _sync("int()", self.nbytes)
        return int(self.view(np.ndarray))

    def __float__(self) -> float:
        _sync("float()", self.nbytes)
        return float(self.view(np.ndarray))

    def __index__(self) -> int:
        _sync("__index__ (loop bound / size from data)", self.nbytes)
        return self.view(np.ndarray).__index__()

    def item(self, *args: Any) -> Any:
        _sync(".item()", self.itemsize)
        return self.view(np.ndarray).item(*args)

    def tolist(self) -> Any:
        _sync(".tolist()", self.nbytes)
        return self.view(np.ndarray).tolist()

    def __iter__(self) -> Iterator[Any]:
        _sync("iteration over a device array", self.nbytes)
        return iter(_wrap(list(self.view(np.ndarray))))

    # ---- indexing
    @staticmethod
    def _is_mask(key: Any) -> bool:
        keys = key if isinstance(key, tuple) else (key,)
        return any(isinstance(k, np.ndarray) and k.dtype == bool for k in keys)

    @staticmethod
    def _is_gather(key: Any) -> bool:
        keys = key if isinstance(key, tuple) else (key,)
        return any(isinstance(k, (np.ndarray, list)) for k in keys)

    def __getitem__(self, key: Any) -> Any:
        plain_key = _plain(key)
        result = self.view(np.ndarray)[plain_key]
        if self._is_mask(key):
            _sync("boolean-mask indexing (output size)")
            _launch("getitem[mask]", (self.view(np.ndarray), plain_key), result)
        elif self._is_gather(key):
            _launch("getitem[index array]", plain_key, result)
        elif not isinstance(result, np.ndarray):  # a scalar element: a 0-d device array
            _launch("getitem[scalar]", (), ())
        return _wrap(result)

    def __setitem__(self, key: Any, value: Any) -> None:
        plain_key, plain_value = _plain(key), _plain(value)
        self.view(np.ndarray)[plain_key] = plain_value
        if self._is_mask(key):
            # CuPy's boolean-mask assignment counts the True values first (treated as a sync)
            _sync("boolean-mask assignment")
            _launch("setitem[mask]", (plain_key, plain_value), ())
        elif self._is_gather(key):
            _launch("setitem[index array]", (plain_key, plain_value), ())
        else:
            _launch("setitem[slice]", plain_value, ())

    # ---- methods that compute without a ufunc
    def _method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.view(np.ndarray), name)(*_plain(args), **_plain(kwargs))
        read = _plain(args) if name in SPARSE_READS else self.view(np.ndarray)
        _launch(f".{name}", read, result)
        return _wrap(result)

    def astype(self, *args: Any, **kwargs: Any) -> Any:
        return self._method("astype", *args, **kwargs)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        return self._method("copy", *args, **kwargs)

    def argsort(self, *args: Any, **kwargs: Any) -> Any:
        return self._method("argsort", *args, **kwargs)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.view(np.ndarray).sort(*_plain(args), **_plain(kwargs))
        _launch(".sort", self.view(np.ndarray), ())

    def take(self, *args: Any, **kwargs: Any) -> Any:
        return self._method("take", *args, **kwargs)

    def fill(self, value: Any) -> None:
        self.view(np.ndarray).fill(_plain(value))
        _launch(".fill", (), self.view(np.ndarray))

    def nonzero(self) -> Any:
        _sync("nonzero (output size)")
        return self._method("nonzero")


class CountingModule(types.ModuleType):
    """``xp`` for counting: NumPy's (or ``scipy.ndimage``'s) names, each call counted."""

    def __init__(self, module: types.ModuleType, label: str) -> None:
        super().__init__(label)
        self._module = module

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._module, name)
        if isinstance(target, np.ufunc):
            return target  # its calls and methods dispatch to CountingArray.__array_ufunc__
        if isinstance(target, types.ModuleType):
            return CountingModule(target, f"{self.__name__}.{name}")
        if isinstance(target, type) or not callable(target):
            return target  # dtypes, constants, classes
        return self._function(name, target)

    @staticmethod
    def _function(name: str, target: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(target)
        def call(*args: Any, **kwargs: Any) -> Any:
            plain_args, plain_kwargs = _plain(args), _plain(kwargs)
            if name in ("asarray", "array", "ascontiguousarray") and args:
                source = args[0]
                if isinstance(source, np.ndarray) and not isinstance(source, CountingArray):
                    COUNTER.here.h2d_bytes += source.nbytes  # host -> device copy
            if name in SYNCING_FUNCTIONS or (name == "where" and len(args) == 1):
                _sync(f"{name} (output size)")
            result = target(*plain_args, **plain_kwargs)
            read = plain_args[1:] if name in SPARSE_READS else plain_args
            _launch(name, (read, plain_kwargs), result)
            return _wrap(result)

        return call


XP = CountingModule(np, "counting_numpy")
NDIMAGE = CountingModule(scipy.ndimage, "counting_numpy.ndimage")


def _array_module(*arrays: Any) -> types.ModuleType:
    if any(isinstance(a, CountingArray) for a in arrays):
        return XP
    return np


def _ndimage_module(xp: types.ModuleType) -> types.ModuleType:
    return NDIMAGE if xp is XP else scipy.ndimage


def _to_numpy(array: Any) -> np.ndarray:
    if isinstance(array, CountingArray):
        _sync("to_numpy (device -> host copy)", array.nbytes)
        return np.array(array.view(np.ndarray))
    return np.asarray(array)


@contextmanager
def counting() -> Iterator[LaunchCounter]:
    """Within the block, the photometry package treats `CountingArray` inputs as device arrays
    with :data:`XP` as their array module; yields the (fresh) counter."""
    import csst_photoz.photometry as package

    replacements = {
        "array_module": _array_module,
        "ndimage_module": _ndimage_module,
        "to_numpy": _to_numpy,
    }
    saved: list[tuple[types.ModuleType, str, Any]] = []
    modules = [package] + [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]
    for module in modules:
        for name, replacement in replacements.items():
            if hasattr(module, name):
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, replacement)
    COUNTER.__init__()
    try:
        yield COUNTER
    finally:
        for module, name, original in saved:
            setattr(module, name, original)
