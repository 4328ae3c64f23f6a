"""`crowd.simulated.fit_from`: a project's simulated crowd fitted to a real crowd's answers file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from labelflow.flows.config import ProjectConfig
from labelflow.flows.project import Project
from labelflow.integrations.answers_file import AnswersFileError
from labelflow.integrations.crowd.base import LabelRequest
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig

DIGITS = [str(d) for d in range(10)]


def write_recorded_crowd(folder: Path) -> None:
    """What a user has: four answers on each of 300 items from some crowd, and the truth of half of them."""
    truth = {f"x{k:03d}": DIGITS[k % 10] for k in range(300)}
    crowd = SimulatedCrowd(SimulatedCrowdConfig(seed=2), DIGITS, truth, reward_per_answer=0.0)
    handles = crowd.publish(
        [LabelRequest(key=f"r/{i}", item_id=i, round_id=1, wave=1, n_answers=4) for i in truth]
    )
    crowd.clock.sleep(1e7)
    rows = [(a.item_id, f"real-{a.worker_id}", a.label) for a in crowd.poll(handles)]
    pd.DataFrame(rows, columns=["item_id", "worker_id", "label"]).to_csv(folder / "answers.csv", index=False)
    known = pd.Series(truth).iloc[:150]
    known.rename_axis("item_id").rename("label").reset_index().to_csv(folder / "truth.csv", index=False)


def config(folder: Path, **simulated: str) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {"store_url": f"sqlite:///{folder}/store.db", "crowd": {"simulated": simulated}}
    )


def test_the_simulated_crowd_is_fitted_to_the_answers_file_and_answers_the_projects_items(
    tmp_path: Path,
) -> None:
    write_recorded_crowd(tmp_path)
    with Project(config(tmp_path, fit_from="answers.csv", fit_truth="truth.csv"), tmp_path) as project:
        crowd = project.crowd()
        assert isinstance(crowd, SimulatedCrowd)
        assert {w.worker_id[:5] for w in crowd.workers} == {"fit-w"} and len(crowd.workers) == 30
        item = str(next(iter(crowd.truth.keys())))  # a mapping or a Series: its item ids either way
        handles = crowd.publish([LabelRequest(key="p/1", item_id=item, round_id=1, wave=1, n_answers=3)])
        crowd.clock.sleep(1e7)
        assert len(crowd.poll(handles)) == 3


def test_an_answers_file_with_labels_the_project_lacks_is_refused_naming_the_file(tmp_path: Path) -> None:
    pd.DataFrame({"item_id": ["a", "b"], "worker_id": ["w", "w"], "label": ["3", "cat"]}).to_csv(
        tmp_path / "answers.csv", index=False
    )
    with (
        Project(config(tmp_path, fit_from="answers.csv"), tmp_path) as project,
        pytest.raises(AnswersFileError, match=r"answers\.csv.*\n.*line 3.*cat"),
    ):
        project.crowd()


def test_fit_truth_without_fit_from_is_refused() -> None:
    with pytest.raises(ValueError, match="fit_truth needs fit_from"):
        SimulatedCrowdConfig(fit_truth="truth.csv")
