"""What one round reports: its figures (`RoundReport`), worked out from the store once the round is done, and the
markdown table the Prefect UI shows for them."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labelflow.contracts import ITEM_ID
from labelflow.flows.config import ProjectConfig
from labelflow.flows.project import Project
from labelflow.flows.reporting import artifact_key
from labelflow.integrations.crowd.base import CrowdBackend
from labelflow.integrations.crowd.replay import ReplayCrowd
from labelflow.integrations.store import ModelVersionRecord, RoundRecord
from labelflow.tasks.calibration import reliability_plot
from labelflow.tasks.confidence import EXPERT_METHOD, DecisionLabels
from labelflow.tasks.escalation import is_review_key
from labelflow.tasks.training import TrainedModel


@dataclass(frozen=True)
class RoundReport:
    round_id: int
    number: int
    batch_size: int
    waves: int
    answers_bought: int  # this round, gold included
    gold_answers: int
    answers_fixed_k: int  # what fixed redundancy at crowd.max_answers would have bought for the same items
    cost: float
    spent_total: float
    answers_total: int
    agreement: float
    label_accuracy: float | None  # crowd labels vs the simulation's hidden truth, non-gold items
    crowd_labels: int
    pseudo_labels: int
    model_accuracy: float
    previous_accuracy: float | None
    promoted: bool
    model_path: str
    label_issues: int = 0  # crowd labels the model contradicts, offered for relabeling
    label_issue_precision: float | None = None  # share of them that are wrong by the hidden truth
    self_training_threshold: float | None = None  # chosen on gold for training.pseudo_label_precision
    gold_above_threshold: int | None = None  # gold items at or above it (out of fold) ...
    gold_right_above_threshold: int | None = None  # ... and how many of them were right
    pseudo_label_precision_bound: float | None = None  # what they bound the precision at (95% one-sided)
    pseudo_label_accuracy: float | None = None  # pseudo-labels vs the simulation's hidden truth
    function_labels: int = 0  # pool items the labeling functions label (weak supervision)
    function_label_accuracy: float | None = None  # their labels vs the simulation's hidden truth
    # The confidence decisions read (redundancy, training weights, label issues): calibrated on random gold?
    confidence_calibrated: bool = False
    confidence_note: str = ""  # why it is uncalibrated
    crowd_model: str = ""  # with quality.method "auto": which crowd model it chose and why
    calibration_gold: int = 0  # answered gold items the calibration was fitted on
    gold_ece_raw: float | None = None  # out-of-fold ECE (10 bins) of the gold before calibration ...
    gold_ece_calibrated: float | None = None  # ... and after it (nested cross-fitting)
    gold_at_target: int = (
        0  # gold items whose out-of-fold calibrated confidence reaches the redundancy target
    )
    gold_right_at_target: float | None = None  # the share of them that is right
    exhausted_requests: int = 0  # requests a recorded crowd could not fill: the item's answers were used up
    escalated: int = (
        0  # items of the round the crowd disagreed on most, sent to an expert after its last wave
    )
    sent_for_review: int = 0  # crowd labels sent to the experts' review queue at the end of the round
    expert_labels: int = 0  # labels an expert decided (escalated or reviewed, this round or before)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_round(
    project: Project,
    crowd: CrowdBackend,
    round_: RoundRecord,
    batch: pd.DataFrame,
    labels: pd.DataFrame,
    waves: int,
    model: TrainedModel,
    version: ModelVersionRecord,
    issues: pd.DataFrame,
    weak: pd.DataFrame,
    confidence: DecisionLabels,
) -> RoundReport:
    """The round's figures, from what it bought (the store's requests and answers) and what it made of it."""
    store, dataset = project.store, project.dataset
    everything = store.requests(round_.id)
    is_expert = everything["is_expert"].astype(bool)
    requests, expert_requests = (
        everything[~is_expert],
        everything[is_expert & everything["external_id"].notna()],
    )
    review = expert_requests["request_key"].map(is_review_key).astype(bool)
    round_answers = store.answers(round_.id)
    non_gold = labels[~labels[ITEM_ID].isin(dataset.known_labels.index)]
    previous = store.model_versions().query("round_id != @round_.id and promoted")
    evidence = model.gold_evidence
    issues_right = share_right(issues, dataset.hidden_truth)
    calibration = confidence.calibration if confidence.calibrated else None
    return RoundReport(
        round_id=round_.id,
        number=round_.number,
        batch_size=len(batch),
        waves=waves,
        answers_bought=int(requests["n_answers"].sum()),
        gold_answers=int(requests.loc[requests["is_gold"].astype(bool), "n_answers"].sum()),
        answers_fixed_k=fixed_k_answers(requests, project.config.crowd.max_answers),
        cost=float(
            requests["n_answers"].sum() * crowd.cost_per_answer()
            + expert_requests["n_answers"].sum() * project.expert_cost_per_answer()
        ),
        spent_total=project.spent(crowd),
        answers_total=store.count_answers(),
        agreement=agreement(round_answers[~round_answers["is_gold"].astype(bool)], labels),
        label_accuracy=share_right(non_gold, dataset.hidden_truth),
        crowd_labels=len(non_gold),
        pseudo_labels=len(model.pseudo_labels),
        model_accuracy=version.accuracy,
        previous_accuracy=float(previous["accuracy"].iloc[-1]) if len(previous) else None,
        promoted=version.promoted,
        model_path=version.path,
        label_issues=len(issues),
        # an offered issue is a hit when the crowd label it questions is wrong
        label_issue_precision=None if issues_right is None else 1.0 - issues_right,
        self_training_threshold=model.self_training_threshold,
        gold_above_threshold=evidence.above if evidence else None,
        gold_right_above_threshold=evidence.right if evidence else None,
        pseudo_label_precision_bound=evidence.precision_bound() if evidence else None,
        pseudo_label_accuracy=share_right(model.pseudo_labels, dataset.hidden_truth),
        function_labels=len(weak),
        function_label_accuracy=share_right(weak, dataset.hidden_truth),
        confidence_calibrated=calibration is not None,
        confidence_note=confidence.reason,
        crowd_model=confidence.model_choice,
        calibration_gold=calibration.n_gold if calibration else 0,
        gold_ece_raw=_finite(calibration.ece_before) if calibration else None,
        gold_ece_calibrated=_finite(calibration.ece_after) if calibration else None,
        gold_at_target=calibration.n_at_threshold if calibration else 0,
        gold_right_at_target=_finite(calibration.share_right_at_threshold) if calibration else None,
        exhausted_requests=(
            crowd.exhausted_requests(store.handles(round_.id, expert=False))
            if isinstance(crowd, ReplayCrowd)
            else 0
        ),
        escalated=int((~review).sum()),
        sent_for_review=int(review.sum()),
        expert_labels=int((labels["method"] == EXPERT_METHOD).sum()),
    )


def _finite(value: float) -> float | None:
    """``value``, or None for NaN (the summary is stored and sent as JSON)."""
    return float(value) if np.isfinite(value) else None


def share_right(labels: pd.DataFrame, truth: pd.Series) -> float | None:
    """Share of ``labels`` (``item_id``, ``label``) that ``truth`` (label by item id) confirms, counting only the
    items whose truth is known; None when it knows none of them.

    Examples
    --------
    >>> labels = pd.DataFrame({"item_id": ["a", "b", "c"], "label": ["cat", "dog", "dog"]})
    >>> share_right(labels, pd.Series({"a": "cat", "b": "cat"}))
    0.5
    >>> share_right(labels, pd.Series({"z": "cat"})) is None
    True
    """
    # one look-up in the truth's own index, whose hash table pandas keeps between calls (``isin`` against 2M ids,
    # or a look-up in a ``dropna()`` copy, hashed them anew each time: ~0.7 s a call); unknown truth reads as NaN
    found = truth.reindex(labels[ITEM_ID].to_numpy())
    known = found.notna().to_numpy()
    if not known.any():
        return None
    return float((labels["label"].to_numpy()[known] == found.to_numpy()[known]).mean())


def agreement(answers: pd.DataFrame, labels: pd.DataFrame) -> float:
    """Share of answers that agree with their item's aggregated label (NaN when no answer has one)."""
    joined = answers.merge(labels[[ITEM_ID, "label"]], on=ITEM_ID, suffixes=("", "_agg"))
    return float((joined["label"] == joined["label_agg"]).mean()) if len(joined) else float("nan")


def fixed_k_answers(requests: pd.DataFrame, k: int) -> int:
    """Answers the round would have bought asking every item (gold included) ``k`` answers in one wave."""
    return int(requests.loc[requests["wave"] == 1, ITEM_ID].nunique() * k)


def round_markdown(config: ProjectConfig, report: RoundReport) -> str:
    """The round's figures as the markdown table of its Prefect artifact."""
    change = (
        f"{report.model_accuracy - report.previous_accuracy:+.3f}"
        if report.previous_accuracy is not None
        else "first model"
    )
    label_accuracy = (
        f"{report.label_accuracy:.3f}" if report.label_accuracy is not None else "n/a (no hidden truth)"
    )
    saved = report.answers_fixed_k - report.answers_bought
    return "\n".join(
        [
            f"# {config.name} — round {report.number}",
            "",
            "| figure | value |",
            "|---|---|",
            f"| items sent to the crowd | {report.batch_size} in {report.waves} wave(s) |",
            f"| answers bought (gold included) | {report.answers_bought} ({report.gold_answers} gold)"
            + (
                f"; {report.exhausted_requests} request(s) got fewer answers than asked, the recording had no "
                "more for the item (not paid, not waited for)"
                if report.exhausted_requests
                else ""
            )
            + " |",
            f"| adaptive redundancy (k0 {config.crowd.redundancy}, up to {config.crowd.max_answers} while "
            f"confidence < {config.quality.confidence_target}) | {saved} answers saved against fixed "
            f"k = {config.crowd.max_answers} ({report.answers_fixed_k}) |",
            f"| cost of the round | ${report.cost:.2f} |",
            f"| spent so far | ${report.spent_total:.2f} of ${config.budget.max_spend:.2f} |",
            f"| agreement with the aggregated label | {report.agreement:.3f} |",
            f"| crowd labels ({config.quality.method}) | {report.crowd_labels} |",
            f"| label accuracy vs hidden truth | {label_accuracy} |",
            f"| items labeled per source | crowd {report.crowd_labels}, labeling functions "
            f"{report.function_labels}, model {report.pseudo_labels} |",
            f"| pseudo-labels (self-training) | {report.pseudo_labels}"
            + (
                f" at confidence ≥ {report.self_training_threshold:.3f}"
                if report.self_training_threshold is not None
                else ""
            )
            + (
                f", chosen on gold: {report.gold_right_above_threshold} of {report.gold_above_threshold} right "
                f"above it, so precision ≥ {report.pseudo_label_precision_bound:.3f} at 95% confidence "
                f"(target {config.training.pseudo_label_precision})"
                if report.pseudo_label_precision_bound is not None
                else ""
            )
            + (
                f", {report.pseudo_label_accuracy:.1%} right by the hidden truth"
                if report.pseudo_label_accuracy is not None
                else ""
            )
            + " |",
            *([f"| crowd model | {report.crowd_model} |"] if report.crowd_model else []),
            f"| confidence (decisions read it) | {confidence_line(report, config.quality.confidence_target)} |",
            f"| held-out model accuracy | {report.model_accuracy:.3f} ({change}) |",
            f"| model promoted | {'yes' if report.promoted else 'no'} |",
            f"| label issues offered for relabeling | {report.label_issues}"
            + (
                f" ({report.label_issue_precision:.0%} of them wrong by the hidden truth)"
                if report.label_issue_precision is not None
                else ""
            )
            + " |",
            *(
                [
                    f"| experts ({config.crowd.expert_backend}) | {report.escalated} item(s) escalated after the "
                    f"last wave, {report.sent_for_review} label(s) sent for review; {report.expert_labels} "
                    "label(s) decided by an expert |"
                ]
                if config.crowd.expert_backend is not None
                else []
            ),
        ]
    )


def confidence_line(report: RoundReport, target: float) -> str:
    """How far the round's confidence can be trusted, in one table cell."""
    if not report.confidence_calibrated:
        return report.confidence_note or "uncalibrated"
    at_target = (
        f"{report.gold_right_at_target:.1%} of the {report.gold_at_target} gold items at ≥ {target} are right"
        if report.gold_right_at_target is not None
        else f"no gold item reaches {target}"
    )
    return (
        f"calibrated on {report.calibration_gold} random gold items; out of fold, ECE "
        f"{_format(report.gold_ece_raw)} raw → {_format(report.gold_ece_calibrated)} calibrated, {at_target}"
    )


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def publish_reliability(
    project: str, workdir: Path, round_number: int, confidence: DecisionLabels
) -> Path | None:
    """The gold's reliability diagram (out-of-fold calibrated confidence against the share right) as a PNG under
    ``workdir`` and an image artifact; nothing when the round's confidence is uncalibrated.

    An image artifact takes a URL that the UI puts in an ``<img>``; a ``data:`` URI carries the PNG itself, so
    no server has to serve the file (as the learning curve does)."""
    from prefect.artifacts import create_image_artifact

    calibration = confidence.calibration
    if calibration is None or not confidence.calibrated:
        return None
    gold = calibration.out_of_fold
    png = reliability_plot(
        gold["confidence_after"],
        gold["correct"],
        workdir / f"reliability_round_{round_number:03d}.png",
        title=f"Round {round_number} gold, out of fold:",
    )
    create_image_artifact(
        image_url="data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii"),
        key=artifact_key(project, "reliability"),
        description=f"Round {round_number}: calibrated confidence against the share right, on gold out of fold "
        f"(ECE {calibration.ece_before:.3f} before calibration, {calibration.ece_after:.3f} after)",
    )
    return png
