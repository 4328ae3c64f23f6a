"""The Python API: ``from labelflow import ...`` without Prefect, every export documented with a runnable
example, and the README's snippet as written."""

from __future__ import annotations

import doctest
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import labelflow

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    "module", ["labelflow", "labelflow.tasks.aggregation", "labelflow.tasks.selection", "labelflow.contracts"]
)
def test_importing_the_api_leaves_prefect_out(module: str) -> None:
    # A fresh interpreter: in this one the flows under test have imported Prefect long ago.
    code = f"import sys, {module}; sys.exit('prefect' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"importing {module} imports prefect\n{result.stderr}"


@pytest.mark.parametrize("name", labelflow.__all__)
def test_every_export_has_a_numpydoc_example(name: str) -> None:
    exported = getattr(labelflow, name)
    assert inspect.isclass(exported) or inspect.isfunction(exported), name
    doc = inspect.getdoc(exported) or ""
    assert re.search(r"^Examples\n-+\n>>> ", doc, flags=re.MULTILINE), f"{name} has no Examples section"


def readme_python_api_snippet() -> str:
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```pycon\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the Python API section should hold exactly one pycon example"
    return str(blocks[0])


def test_readme_python_api_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # w3 disagrees on t1 and agrees on t2; the two others agree throughout: the snippet's printed labels.
    pd.DataFrame(
        {
            "task": ["t1", "t1", "t1", "t2", "t2", "t2"],
            "worker": ["w1", "w2", "w3", "w1", "w2", "w3"],
            "label": ["cat", "cat", "dog", "dog", "dog", "dog"],
        }
    ).to_csv(tmp_path / "answers.csv", index=False)
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(readme_python_api_snippet(), {}, "README", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_readme_lists_every_export() -> None:
    section = README.read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in labelflow.__all__ if f"`{name}`" not in section]
    assert not missing, f"README's Python API section does not list {missing}"
