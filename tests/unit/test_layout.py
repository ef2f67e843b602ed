"""The layout: imports point down the layers, functions fit on a screen, modules stay small.

Layers, lowest first: ``agent`` (and ``envs`` beside it), ``loops``, ``distributed`` (the
Ray roles, composed from the config as ``rlkit.build`` composes the one-machine run),
``app``. ``config`` and ``types`` are leaves every layer may use; below ``distributed``
only the builders read the config tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "rlkit"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
SIZE_NOTE = "Size note:"  # a module docstring paragraph saying why it is larger

# layer -> modules it must not import (prefix match on the dotted name)
FORBIDDEN = {
    "rlkit.agent": ("rlkit.envs", "rlkit.loops", "rlkit.app", "rlkit.build", "rlkit.config"),
    "rlkit.envs": ("rlkit.agent", "rlkit.loops", "rlkit.app", "rlkit.build", "rlkit.config"),
    "rlkit.loops": ("rlkit.app", "rlkit.build", "rlkit.config"),
    # the Ray roles and loop build themselves from the config, like rlkit.build
    "rlkit.distributed": ("rlkit.app",),
}
# the builders are where a config meets constructors
CONFIG_READERS = {"rlkit.agent.builder", "rlkit.envs.builder"}


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def imported(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                base = name.split(".")[: -node.level or None]
                if path.name == "__init__.py":
                    base = name.split(".")[: len(name.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("name,path", modules(), ids=[m for m, _ in modules()])
def test_imports_point_down_the_layers(name, path):
    from rlkit._compat import OLD_PATHS

    deps = imported(path, name)
    old = sorted(d for d in deps if any(_under(d, o) for o in OLD_PATHS))
    assert not old, f"{name} imports old paths {old}; import the layer's module"
    for layer, forbidden in FORBIDDEN.items():
        if not _under(name, layer):
            continue
        allowed = ("rlkit.config",) if name in CONFIG_READERS else ()
        bad = sorted(d for d in deps if any(_under(d, f) for f in forbidden if f not in allowed))
        assert not bad, f"{name} (layer {layer}) imports {bad}"


@pytest.mark.parametrize("name,path", modules(), ids=[m for m, _ in modules()])
def test_functions_fit_on_a_screen(name, path):
    tree = ast.parse(path.read_text())
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{name}: {', '.join(long)} > {MAX_FUNCTION_LINES} lines"


@pytest.mark.parametrize("name,path", modules(), ids=[m for m, _ in modules()])
def test_modules_stay_small_or_say_why(name, path):
    text = path.read_text()
    lines = len(text.splitlines())
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert lines <= MAX_MODULE_LINES or SIZE_NOTE in doc, (
        f"{name}: {lines} lines > {MAX_MODULE_LINES} and no '{SIZE_NOTE}' in its docstring"
    )
