"""Nothing in vj runs text or files as code: no eval/exec/compile of strings, no unpickling but the restricted
unpickler, no torch.load that may unpickle (weights_only=True only), no shell. Checked over the source's syntax
tree, so a new call anywhere in vj/ fails here until it is looked at."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_ATTRIBUTES = {("pickle", "load"), ("pickle", "loads"), ("os", "system"), ("os", "popen"),
                        ("subprocess", "Popen"), ("subprocess", "run"), ("subprocess", "call"),
                        ("subprocess", "check_output"), ("marshal", "loads")}
# Looked at and allowed: the stream output relays its own MPEG-TS through the ffmpeg program (an argument list, no
# shell; the URL is one argument, checked to be srt://, udp:// or rtmp:// when the config is read).
REVIEWED = {("vj/render/outputs.py", "subprocess.Popen")}


def calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            yield node


def test_no_code_execution_from_data_in_vj():
    found = []
    for path in sorted((REPO / "vj").rglob("*.py")):
        for call in calls(path):
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            func = call.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"{where}: {func.id}()")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                name = f"{func.value.id}.{func.attr}"
                shell = any(k.arg == "shell" for k in call.keywords)
                reviewed = (str(path.relative_to(REPO)), name) in REVIEWED and not shell
                if (func.value.id, func.attr) in FORBIDDEN_ATTRIBUTES and not reviewed:
                    found.append(f"{where}: {name}()")
                if (func.value.id, func.attr) == ("torch", "load"):
                    safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                               for k in call.keywords)
                    if not safe:
                        found.append(f"{where}: torch.load() without weights_only=True")
    assert not found, "\n".join(found)


def test_the_only_unpickler_is_the_restricted_one():
    from vj.models.checkpoints import RestrictedUnpickler

    subclasses = []
    for path in sorted((REPO / "vj").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any("Unpickler" in ast.unparse(base) for base in node.bases):
                subclasses.append(node.name)
    assert subclasses == [RestrictedUnpickler.__name__]


def test_a_pickle_that_would_run_a_command_is_refused_before_it_runs(tmp_path):
    """What the restriction is for: a checkpoint crafted to call os.system is an error, and nothing ran."""
    import os
    import pickle

    from vj.models.checkpoints import CheckpointError, read_pickle

    canary = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {canary}",)

    bad = tmp_path / "network.pkl"
    bad.write_bytes(pickle.dumps({"G_ema": Exploit()}))
    try:
        read_pickle(bad)
    except CheckpointError as e:
        assert "posix.system" in str(e) or "os.system" in str(e), e
    else:
        raise AssertionError("the crafted pickle was loaded")
    assert not canary.exists()
