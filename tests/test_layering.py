"""Data flows one way: a pipeline stage never imports a later one."""

import ast
from pathlib import Path

import pytest

STAGES = ["data", "encode", "describe", "fuse", "models", "index", "evaluate", "serve", "engines",
          "pipeline"]
SRC = Path(__file__).resolve().parents[1] / "src" / "fuserec"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


@pytest.mark.parametrize("stage", [s for s in STAGES if (SRC / s).is_dir()])
def test_stage_imports_only_earlier_stages(stage):
    later = set(STAGES[STAGES.index(stage) + 1:])
    if stage == "engines":  # engines run any stage's batch work, but never the server
        later = {"serve"}
    if stage == "pipeline":  # orchestration composes every stage but the server
        later = {"serve", "engines"}
    offending = []
    for path in sorted((SRC / stage).rglob("*.py")):
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "fuserec" and len(parts) > 1 and parts[1] in later:
                offending.append(f"{path.relative_to(SRC)} imports {module}")
            if parts[0] == "fuserec" and len(parts) > 1 and \
                    parts[1] in {"cli", "pipeline"} - {stage}:
                offending.append(f"{path.relative_to(SRC)} imports {module}")
    assert not offending, "\n".join(offending)
