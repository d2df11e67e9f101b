"""The README's IAPT example runs as printed (on the real embedded SmolLM2)."""
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, capsys):
    block = re.search(r"## Using IAPT on any causal LM\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the example saves to runs/adapter
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "runs/adapter/iapt_model.safetensors").exists()
    assert "trainable params" in capsys.readouterr().out
