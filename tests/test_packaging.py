"""The package declares what it imports: `pip install iapt` gives a working library, the extras the rest."""
import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The library's core: what `import iapt`, the method, the contract and both training routes load at import time.
CORE = ["iapt/__init__.py", "iapt/contract.py", "iapt/backbones.py", "iapt/errors.py", "iapt/method", "iapt/data",
        "iapt/training", "iapt/evaluation/positions.py", "iapt/baselines"]


def declared() -> tuple[set, set]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[<>=!~ \[]", req)[0].lower().replace("_", "-")
    core = {name(r) for r in project["dependencies"]}
    extras = {name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    return core, extras


def third_party_imports(paths, module_level_only: bool) -> set[str]:
    found = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        nodes = tree.body if module_level_only else ast.walk(tree)
        for n in nodes:
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.level == 0:
                names = [n.module]
            else:
                continue
            found |= {m.split(".")[0] for m in names if m.split(".")[0] not in sys.stdlib_module_names}
    return found - {"iapt"}


def distributions(modules: set[str]) -> set[str]:
    dists = importlib.metadata.packages_distributions()
    return {dists[m][0].lower().replace("_", "-") for m in modules}


def files(*parts) -> list[Path]:
    return [f for p in parts for f in ((REPO / p).rglob("*.py") if (REPO / p).is_dir() else [REPO / p])]


def test_every_third_party_module_the_package_imports_is_declared():
    core, extras = declared()
    missing = distributions(third_party_imports(files("iapt"), module_level_only=False)) - core - extras
    assert not missing, f"imported by iapt/ but not declared in pyproject.toml: {sorted(missing)}"


def test_the_core_imports_only_its_declared_dependencies():
    core, _ = declared()
    needed = distributions(third_party_imports(files(*CORE), module_level_only=True))
    assert needed <= core, f"the core imports {sorted(needed - core)} at import time, which are only extras"
    assert {"torch", "transformers", "safetensors"} <= core


def test_console_scripts_point_at_real_entry_points():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"iapt-train", "iapt-predict", "iapt-lm-eval"}
    import importlib
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))
