"""Every array-module call of the photometry and stamp code exists in CuPy and accepts the
arguments it is given, checked on a CPU machine.

The photometry code takes its array module from its input (``xp = array_module(image)``, and
``ndi = ndimage_module(xp)`` for ``scipy.ndimage`` / ``cupyx.scipy.ndimage``). A static walk of
``csst_photoz/photometry/*.py`` collects every ``xp.<name>`` and ``ndi.<name>`` used, with the
keywords and number of positional arguments of each call, and every method called on anything
(checked against the array methods NumPy has and CuPy lacks). Each is checked against CuPy's
API: the installed CuPy when it imports (it does without a GPU, with ``cuda-pathfinder``), else
``cupy_api.json`` beside this file, CuPy's API as introspected from ``cupy-cuda13x`` 14.2.0,
the version on the lent GPU machines (``/work/.library/device/KINDS.md``); regenerate it with
``python tests/photometry/test_cupy_api_coverage.py --write`` where CuPy imports.

What can be known this way: a function CuPy lacks, a keyword it does not take (e.g. ufuncs'
``where=``), too many positional arguments, an array method CuPy's ``ndarray`` lacks. What
cannot: numerical differences, which the ``gpu``-marked tests (CuPy photometry equals NumPy's)
check on a GPU.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "csst_photoz" / "photometry"
API_FILE = Path(__file__).with_name("cupy_api.json")
#: names bound to the array module / the ndimage module in the photometry code
MODULE_NAMES = {"xp": "cupy", "ndi": "cupyx.scipy.ndimage"}
#: keywords every CuPy ufunc call takes (cupy._core._kernel.ufunc.__call__)
UFUNC_KEYWORDS = {"out", "dtype", "casting"}


@dataclass(frozen=True)
class Use:
    """One use of an array-module attribute in the photometry code."""

    namespace: str  # "cupy" or "cupyx.scipy.ndimage"
    name: str  # dotted below the namespace ("linalg.norm", "add.at", "float32")
    where: str  # file:line
    called: bool
    keywords: tuple[str, ...] = ()
    positional: int = 0
    starred: bool = False


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def collect_uses(folder: Path = PACKAGE) -> tuple[list[Use], dict[str, list[str]]]:
    """Array-module uses and method calls (name -> places) in the modules of ``folder``."""
    uses: list[Use] = []
    methods: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        calls = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or isinstance(node.ctx, ast.Store):
                continue
            where = f"{path.name}:{node.lineno}"
            call = calls.get(id(node))
            parts = _dotted(node)
            if parts and parts[0] in MODULE_NAMES:
                uses.append(
                    Use(
                        MODULE_NAMES[parts[0]], ".".join(parts[1:]), where, call is not None,
                        tuple(k.arg for k in call.keywords if k.arg) if call else (),
                        len(call.args) if call else 0,
                        bool(call and any(isinstance(a, ast.Starred) for a in call.args)),
                    )
                )  # fmt: skip
            elif call is not None and not (parts and parts[0] in {"np", "math", "self"}):
                methods.setdefault(node.attr, []).append(where)
    return _longest(uses), methods


def _longest(uses: list[Use]) -> list[Use]:
    """Drop ``xp.add`` where the same place also uses ``xp.add.at``."""
    prefixes = {(u.where, u.namespace, u.name.rsplit(".", 1)[0]) for u in uses if "." in u.name}
    return [u for u in uses if (u.where, u.namespace, u.name) not in prefixes]


# --------------------------------------------------------------------------- CuPy's API


def _describe(obj: Any) -> dict[str, Any]:
    kind = type(obj).__name__
    if kind == "ufunc":
        methods = ("at", "reduce", "accumulate", "outer", "reduceat")
        return {"kind": "ufunc", "nin": obj.nin, "methods": [m for m in methods if hasattr(obj, m)]}
    if isinstance(obj, type) and issubclass(obj, np.generic):
        return {"kind": "dtype"}
    if isinstance(obj, (int, float)):
        return {"kind": "constant"}
    if callable(obj):
        try:
            parameters = inspect.signature(obj).parameters.values()
        except (TypeError, ValueError):
            return {"kind": "callable", "parameters": None}
        return {
            "kind": "callable",
            "parameters": [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL,
                                                                        p.VAR_KEYWORD)],
            "var_positional": any(p.kind == p.VAR_POSITIONAL for p in parameters),
            "var_keyword": any(p.kind == p.VAR_KEYWORD for p in parameters),
        }  # fmt: skip
    return {"kind": type(obj).__name__}


def introspect_cupy() -> dict[str, Any]:
    """CuPy's API as the test needs it: public names of ``cupy``, ``cupy.linalg``,
    ``cupyx.scipy.ndimage`` with their parameters, and ``cupy.ndarray``'s methods."""
    import cupy
    import cupyx.scipy.ndimage

    api: dict[str, Any] = {"version": cupy.__version__, "namespaces": {}}
    for label, module, prefix in (
        ("cupy", cupy, ""), ("cupy", cupy.linalg, "linalg."),
        ("cupyx.scipy.ndimage", cupyx.scipy.ndimage, ""),
    ):  # fmt: skip
        names = api["namespaces"].setdefault(label, {})
        for name in dir(module):
            if not name.startswith("_"):
                names[prefix + name] = _describe(getattr(module, name))
    api["ndarray_methods"] = sorted(m for m in dir(cupy.ndarray) if not m.startswith("_"))
    return api


def cupy_api() -> tuple[dict[str, Any], str]:
    """CuPy's API and where it came from: the installed CuPy, else the stored file."""
    try:
        return introspect_cupy(), "installed CuPy"
    except Exception:  # not installed, or it does not import here: the stored API
        return json.loads(API_FILE.read_text()), f"{API_FILE.name}"


# --------------------------------------------------------------------------- checks


def problems_of(use: Use, api: dict[str, Any]) -> list[str]:
    """What CuPy would do differently with ``use`` (empty: nothing found)."""
    names = api["namespaces"][use.namespace]
    head, _, method = use.name.partition(".")
    if use.name not in names and not (head in names and names[head]["kind"] == "ufunc"):
        return [f"{use.where}: {use.namespace}.{use.name} does not exist in CuPy"]
    entry = names.get(use.name) or names[head]
    if not use.called:
        return []
    if entry["kind"] == "ufunc":
        if method:
            ok = method in entry["methods"]
            return [] if ok else [f"{use.where}: CuPy's {head} has no .{method}"]
        bad = sorted(set(use.keywords) - UFUNC_KEYWORDS)
        return [f"{use.where}: CuPy ufunc {head} does not take {bad}"] if bad else []
    if entry["kind"] == "dtype" or entry.get("parameters") is None:
        return []
    found = []
    parameters = entry["parameters"]
    unknown = [k for k in use.keywords if k not in parameters]
    if unknown and not entry["var_keyword"]:
        found.append(f"{use.where}: {use.namespace}.{use.name} does not take {unknown}")
    if use.positional > len(parameters) and not (entry["var_positional"] or use.starred):
        found.append(
            f"{use.where}: {use.namespace}.{use.name} takes {len(parameters)} arguments, "
            f"given {use.positional} positionally"
        )
    return found


@pytest.fixture(scope="module")
def uses() -> list[Use]:
    return collect_uses()[0]


@pytest.fixture(scope="module")
def api() -> dict[str, Any]:
    return cupy_api()[0]


def test_the_walk_finds_the_array_module_calls_of_every_stage(uses):
    names = {u.name for u in uses}
    # background (binned medians), detection (labels), apertures (weights), stamps (gathers)
    assert {"where", "bincount", "cumsum", "searchsorted", "take"} <= names
    assert {"label", "correlate"} <= {u.name for u in uses if u.namespace != "cupy"}
    files = {u.where.split(":")[0] for u in uses}
    assert {"background.py", "detection.py", "apertures.py", "stamps.py"} <= files
    assert len(uses) > 300


def test_every_array_module_call_exists_in_cupy_with_the_same_arguments(uses, api):
    found = [problem for use in uses for problem in problems_of(use, api)]
    assert not found, "\n".join(found)


def test_no_method_called_in_the_photometry_is_missing_from_cupy_arrays(api):
    _, methods = collect_uses()
    numpy_only = set(dir(np.ndarray)) - set(api["ndarray_methods"])
    used = {name: places for name, places in methods.items() if name in numpy_only}
    assert not used, f"NumPy array methods CuPy lacks, called at {used}"


@pytest.mark.parametrize(
    ("use", "problem"),
    [
        (Use("cupy", "no_such_function", "x.py:1", True), "does not exist"),
        (Use("cupy", "sqrt", "x.py:2", True, ("where",), 1), "does not take ['where']"),
        (Use("cupy", "add.nosuchmethod", "x.py:3", True), "has no .nosuchmethod"),
        (Use("cupy", "searchsorted", "x.py:4", True, ("side", "bogus"), 2), "['bogus']"),
        (Use("cupy", "searchsorted", "x.py:5", True, (), 7), "given 7 positionally"),
        (Use("cupyx.scipy.ndimage", "label", "x.py:6", True, ("nonsense",), 1), "nonsense"),
    ],
)
def test_the_check_finds_what_cupy_would_refuse(api, use, problem):
    (found,) = problems_of(use, api)
    assert problem in found and use.where in found


def test_clean_uses_pass(api):
    for use in (
        Use("cupy", "searchsorted", "x.py:1", True, ("side",), 2),
        Use("cupy", "add.at", "x.py:2", True, (), 3),
        Use("cupy", "float32", "x.py:3", False),
        Use("cupy", "linalg.norm", "x.py:4", True, ("axis",), 1),
    ):
        assert problems_of(use, api) == []


def test_the_stored_api_is_cupy_14_on_the_lent_machines():
    stored = json.loads(API_FILE.read_text())
    assert stored["version"] == "14.2.0"
    assert {"where", "bincount", "add", "float32"} <= set(stored["namespaces"]["cupy"])
    assert "label" in stored["namespaces"]["cupyx.scipy.ndimage"]


if __name__ == "__main__":  # python tests/photometry/test_cupy_api_coverage.py --write
    if sys.argv[1:] == ["--write"]:
        API_FILE.write_text(json.dumps(introspect_cupy(), indent=0, sort_keys=True) + "\n")
        print(f"wrote {API_FILE}")
