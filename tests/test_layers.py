"""The layers import downwards only: audio, cues, control, models < engine < render < app < cli."""

from __future__ import annotations

import ast

from conftest import REPO

# Lower numbers are lower layers; a module may import from its own layer or below.
LAYERS = {
    "config": 0, "clock": 0, "cpu_memory": 0, "errors": 0, "native_noise": 0, "ratelog": 0,
    "audio": 1, "cues": 1, "control": 1, "models": 1,
    "engine": 2,
    "render": 3,
    "app": 4,
    "bench": 5, "devices": 5,
    "cli": 6,
}


def layer(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "vj" and len(parts) > 1, module
    assert parts[1] in LAYERS, f"{module}: which layer is it in? (add it to LAYERS)"
    return LAYERS[parts[1]]


def imports(path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vj."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("vj.")]
    return found


def test_no_import_runs_back_up_a_layer():
    upward = []
    for path in sorted((REPO / "vj").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        if module == "vj":
            continue
        for line, imported in imports(path):
            if layer(imported) > layer(module):
                upward.append(f"{path.relative_to(REPO)}:{line}: {module} imports {imported}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    """It can fail: the engine importing the render layer is caught."""
    bad = tmp_path / "show.py"
    bad.write_text("from vj.render.window import Window\n")
    assert layer(imports(bad)[0][1]) > layer("vj.engine.show")
