"""The built wheel, installed in a new virtualenv inside someone else's project.

The folder holds its own ``flows/`` package (as most Prefect projects do) and ``tasks.py`` (as a Celery app
does), and is the working directory of every command, so it comes first on ``python -c``'s import path: the
wheel must install one top-level package, ``labelflow``, and never import a bare ``flows`` or ``tasks``.

The new virtualenv gets labelflow only from the wheel. Its dependencies come from the project's own virtualenv
through a ``.pth`` line naming that site-packages folder: a plain path line adds the folder but runs none of the
``.pth`` files in it, so the editable install that points at this checkout stays out. That keeps the test
offline and fast (only the wheel is built and installed), and the tests below check where labelflow was
imported from.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]
# What a checkout may hold beside the sources that the build must not see (a stale build/ folder, for one, would
# put modules deleted since into the wheel).
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", ".labelflow"
)
USER_TASKS = '"""A Celery app\'s tasks module."""\n\nBROKER_URL = "memory://"\n'
USER_FLOWS = '"""A Prefect project\'s own flows package."""\n\nOWNER = "the user"\n'


def run(
    *command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def check(result: subprocess.CompletedProcess[str]) -> str:
    """The command's output, once it has exited 0."""
    assert result.returncode == 0, (
        f"{result.args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@dataclass(frozen=True)
class Installed:
    wheel: Path
    project: Path  # the user's folder: the working directory of every command
    python: Path
    site_packages: Path

    def run(self, *command: str | Path) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(
            PATH=f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}",
            VIRTUAL_ENV=str(self.python.parent.parent),
            PREFECT_HOME=str(self.project / ".prefect"),
            GX_ANALYTICS_ENABLED="false",
        )
        return run(*command, cwd=self.project, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    source = tmp_path_factory.mktemp("checkout") / "labelflow"
    shutil.copytree(REPO, source, symlinks=True, ignore=NOT_SOURCES)
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    check(run(*pip, "wheel", "--no-deps", "--wheel-dir", dist, source))
    (wheel,) = dist.glob("labelflow-*.whl")

    project = tmp_path_factory.mktemp("someone-elses-project")
    (project / "flows").mkdir()
    (project / "flows" / "__init__.py").write_text(USER_FLOWS)
    (project / "tasks.py").write_text(USER_TASKS)
    venv = project / ".venv"
    check(run(sys.executable, "-m", "venv", "--without-pip", venv))
    python = venv / "bin" / "python"
    site_packages = Path(
        check(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")).strip()
    ).resolve()
    dependencies = dict.fromkeys(
        path for path in [*site.getsitepackages(), sysconfig.get_path("purelib")] if Path(path).is_dir()
    )
    (site_packages / "project-dependencies.pth").write_text("".join(f"{path}\n" for path in dependencies))
    check(run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel))
    return Installed(wheel, project, python, site_packages)


def test_the_wheel_holds_one_top_level_package_of_real_files(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        symlinks = [info.filename for info in wheel.infolist() if (info.external_attr >> 28) == 0o12]
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"labelflow"}
    assert symlinks == []
    for expected in (
        "labelflow/contracts.py",
        "labelflow/flows/cli.py",
        "labelflow/integrations/store/migrations/script.py.mako",
        "labelflow/integrations/store/migrations/versions/0001_initial.py",
    ):
        assert expected in names
    assert any(name.endswith("LICENSE") for name in names)
    assert "License-Expression: Apache-2.0" in metadata


def test_the_command_runs_from_the_wheel(installed: Installed) -> None:
    output = check(installed.run(installed.python.parent / "labelflow", "--help"))
    assert "demo" in output and "serve" in output


def test_the_api_imports_from_the_wheel_beside_the_users_flows_and_tasks(installed: Installed) -> None:
    script = (
        "import flows, tasks, labelflow\n"
        "from labelflow import DawidSkene\n"
        "print(labelflow.__file__, labelflow.tasks.__file__, flows.OWNER, tasks.BROKER_URL, sep='\\n')\n"
    )
    output = check(installed.run(installed.python, "-c", script))
    package, subpackage, flows_owner, broker = output.splitlines()
    assert Path(package).resolve() == installed.site_packages / "labelflow" / "__init__.py"
    assert Path(subpackage).resolve() == installed.site_packages / "labelflow" / "tasks" / "__init__.py"
    assert (flows_owner, broker) == ("the user", "memory://")


def test_the_doctests_pass_from_the_installed_wheel(installed: Installed) -> None:
    doctests = ["--doctest-modules", "--pyargs", "labelflow.tasks.aggregation"]
    result = installed.run(installed.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *doctests)
    # pytest exits 5 when it collects nothing, so a module without doctests fails here too
    assert " passed" in check(result)
