"""The confidence a round's decisions read: calibrated on the round's gold when there is enough of it.

Every decision a round takes on a crowd label's confidence — adaptive redundancy (one more answer while the
label is below ``quality.confidence_target``), the weight a crowd label trains the model with (and so the
self-training threshold chosen on gold after that fit), and the confidence label issues are ranked beside — reads
the ``confidence`` column of the labels the aggregation stage stores. :func:`decision_labels` is the one place
that column is made: the aggregator's posteriors, mapped by :func:`labelflow.tasks.calibration.calibrate_from_gold`
when at least :data:`~labelflow.tasks.calibration.MIN_GOLD` gold items *drawn at random* have answers, and the
raw posteriors otherwise, with the reason kept for the round report ("uncalibrated").

The map is fitted on each gold item's answers from the first round it was asked in (:func:`as_first_asked`), as
pool items are answered, and applied to the posteriors from every answer. Gold is asked as pool items are, too:
in that first round, a gold item gets one more answer a wave while its out-of-fold confidence
(:attr:`DecisionLabels.gold`) is below the target, so the map is fitted on answer counts that stop where the
labels it is applied to stop (asked in the first wave only, gold had ``redundancy`` answers each where the
labels had 2 to ``max_answers``: the map learned how right two answers are and was applied to more).

Only gold drawn at random may calibrate: a map fitted on hand-picked or escalated items learns how right the
aggregator is on *those* items, which says nothing about the rest. Gold that is not known to be a random draw
(a user's ``dataset.gold_source`` file) is still clamped, but never calibrates. Items an expert decided (an item
escalated after the crowd's last wave, or a label sent for review: ``expert``) are clamped too — their label is
the expert's, and the crowd's answers on them measure the crowd's workers — but they are never in the
calibration set, in any fold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from labelflow.contracts import ITEM_ID
from labelflow.tasks.aggregation import (
    Aggregator,
    DawidSkene,
    aggregate_answers_frame,
    choose_aggregator,
    make_aggregator,
)
from labelflow.tasks.calibration import Calibration, answers_per_item, calibrate_from_gold


@dataclass(frozen=True)
class DecisionLabels:
    """What :func:`decision_labels` returns.

    Attributes
    ----------
    labels
        ``item_id, label, confidence, method, n_answers`` for every answered non-gold item; ``confidence`` is
        calibrated when ``calibration.calibrated``.
    calibration
        The calibration on the random gold (its out-of-fold ECE and share right at the target, the reliability
        data), or None when no gold could calibrate (``reason`` says why).
    reason
        Why the confidence is uncalibrated; empty when it is calibrated.
    model_choice
        With ``method`` :data:`AUTO_METHOD`, which crowd model was chosen and why; empty otherwise.
    gold
        ``item_id, confidence, n_answers`` of every answered random gold item, on its answers as first asked
        (:func:`as_first_asked`): its confidence as if it were not gold (its out-of-fold posterior, calibrated
        like the labels' when they are), so adaptive redundancy asks gold as it asks the items the map is
        applied to. Empty when the gold is not drawn at random.
    """

    labels: pd.DataFrame
    calibration: Calibration | None
    reason: str
    model_choice: str = ""  # with method "auto": the model chosen and why
    gold: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=[ITEM_ID, "confidence", "n_answers"])
    )

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None and self.calibration.calibrated


EXPERT_METHOD = "expert"  # the ``method`` of a label an expert decided
# The method that picks the crowd model by evidence at each aggregation (choose_aggregator).
AUTO_METHOD = "auto"


class _WarmStarted:
    """An aggregator whose ``fit(answers, gold)`` passes the earlier rounds' confusion matrices on (Dawid-Skene
    only; the voting methods have nothing to warm-start) and clamps the ``expert`` labels beside the gold it is
    given (so a calibration's folds hold out gold only)."""

    def __init__(
        self,
        model: Aggregator,
        warm_start: Mapping[str, npt.ArrayLike] | None,
        expert: pd.Series | None = None,
    ) -> None:
        self.model = model
        self.warm_start = warm_start
        self.expert = expert

    @property
    def probas_(self) -> pd.DataFrame:
        return self.model.probas_

    @property
    def labels_(self) -> pd.Series:
        return self.model.labels_

    @property
    def n_answers_(self) -> pd.Series:
        return self.model.n_answers_

    def fit(self, answers: pd.DataFrame, gold: pd.Series | None = None) -> _WarmStarted:
        gold = _clamped(gold, self.expert)
        if isinstance(self.model, DawidSkene):
            self.model.fit(answers, gold, warm_start=self.warm_start)
        else:
            self.model.fit(answers, gold)
        return self


class _WarmStartedDawidSkene(_WarmStarted):
    """A warm-started Dawid-Skene, which cross-fits its gold without refitting."""

    model: DawidSkene

    def held_out_gold_probas(self, item_ids: pd.Index) -> pd.DataFrame:
        return self.model.held_out_gold_probas(item_ids)


def _warm_started(
    method: str,
    label_names: Sequence[str],
    warm_start: Mapping[str, npt.ArrayLike] | None,
    expert: pd.Series | None = None,
) -> _WarmStarted:
    model = make_aggregator(method, label_names)
    if isinstance(model, DawidSkene):
        return _WarmStartedDawidSkene(model, warm_start, expert)
    return _WarmStarted(model, warm_start, expert)


def decision_labels(
    answers: pd.DataFrame,
    label_names: Sequence[str],
    *,
    method: str,
    gold: pd.Series,
    random_gold: bool,
    confidence_target: float,
    warm_start: Mapping[str, npt.ArrayLike] | None = None,
    expert: pd.Series | None = None,
) -> DecisionLabels:
    """Labels whose confidence the round's decisions may trust: calibrated on the gold when it is a random draw
    and enough of it is answered, the aggregator's posteriors otherwise; an item an expert decided gets the
    expert's label.

    Parameters
    ----------
    answers
        The answer contract (``item_id, worker_id, label``), gold items' answers included.
    label_names
        The project's labels.
    method
        An aggregation method of :data:`labelflow.tasks.aggregation.METHODS`, or :data:`AUTO_METHOD`: the one
        :func:`~labelflow.tasks.aggregation.choose_aggregator` picks on these answers (and the gold, when it is
        random), said in ``model_choice``.
    gold
        ``item_id -> label`` of the project's gold items; always clamped.
    random_gold
        Whether ``gold`` was drawn at random (only then does it calibrate).
    confidence_target
        The redundancy target: the calibration reports the gold's share right at or above it.
    warm_start
        Earlier rounds' confusion matrices by worker (Dawid-Skene).
    expert
        ``item_id -> label`` an expert gave (the latest expert answer on each escalated or reviewed item): the
        item's label (``method`` :data:`EXPERT_METHOD`, confidence 1), clamped in every fit like gold, never
        calibrating. An expert's answers are also answers of a worker like any other in ``answers``.

    Examples
    --------
    >>> import pandas as pd
    >>> answers = pd.DataFrame({"item_id": ["i1", "i1", "g1", "g1"], "worker_id": ["a", "b", "a", "b"],
    ...                         "label": ["cat", "cat", "dog", "dog"]})
    >>> found = decision_labels(answers, ["cat", "dog"], method="majority_vote", gold=pd.Series({"g1": "dog"}),
    ...                         random_gold=True, confidence_target=0.9)
    >>> found.labels[["item_id", "label", "confidence"]]
      item_id label  confidence
    0      i1   cat         1.0
    >>> found.reason
    'uncalibrated: 1 answered gold item(s), fewer than the 20 a calibration needs'
    """
    expert = _expert_only(expert, gold)
    model_choice = ""
    if method == AUTO_METHOD:
        # Only gold drawn at random is scored: hand-picked items say how a model does on those items.
        choice = choose_aggregator(answers, gold if random_gold else None, label_names=label_names)
        method, model_choice = choice.method, f"auto chose {choice.method}: {choice.reason}"
    if not random_gold:
        labels = aggregate_answers_frame(
            answers, label_names, method=method, gold=_clamped(gold, expert), warm_start=warm_start
        )
        return DecisionLabels(
            _expert_wins(labels, answers, expert),
            None,
            "uncalibrated: the gold is not known to be drawn at random",
            model_choice,
        )
    calibration = calibrate_from_gold(
        as_first_asked(answers, gold.index),
        gold,
        lambda: _warm_started(method, label_names, warm_start, expert),
        threshold=confidence_target,
    )
    # The labels come from every answer; the map, fitted on gold as first asked, is applied to their posteriors.
    full = _warm_started(method, label_names, warm_start, expert).fit(answers, gold)
    gold_ids = pd.Index([str(i) for i in gold.index])
    raw = full.probas_[~full.probas_.index.isin(gold_ids)]
    n_answers = full.n_answers_.reindex(raw.index, fill_value=0).to_numpy(dtype=np.int64)
    probas = calibration.map.apply(raw.to_numpy(), n_answers) if calibration.calibrated else raw.to_numpy()
    labels = pd.DataFrame(
        {
            ITEM_ID: raw.index.to_numpy(),
            "label": full.labels_.reindex(raw.index).to_numpy(),
            "confidence": probas.max(axis=1),
            "method": method,
            "n_answers": n_answers,
        }
    )
    reason = "" if calibration.calibrated else f"uncalibrated: {calibration.reason}"
    return DecisionLabels(
        _expert_wins(labels, answers, expert),
        calibration,
        reason,
        model_choice=model_choice,
        gold=calibration.gold_confidence,
    )


def _expert_only(expert: pd.Series | None, gold: pd.Series) -> pd.Series:
    """The expert labels by item id as text, less gold items (their gold label stands)."""
    if expert is None or expert.empty:
        return pd.Series(dtype=object)
    expert = pd.Series(expert.astype(str).to_numpy(), index=pd.Index([str(i) for i in expert.index]))
    expert = expert[~expert.index.duplicated(keep="last")]
    return expert[~expert.index.isin([str(i) for i in gold.index])]


def _clamped(gold: pd.Series | None, expert: pd.Series | None) -> pd.Series | None:
    """``gold`` and the expert labels, the items an aggregator fits with their label known."""
    if expert is None or expert.empty:
        return gold
    if gold is None or gold.empty:
        return expert
    clamped: pd.Series = pd.concat([gold, expert[~expert.index.isin([str(i) for i in gold.index])]])
    return clamped


def _expert_wins(labels: pd.DataFrame, answers: pd.DataFrame, expert: pd.Series) -> pd.DataFrame:
    """``labels`` with each answered item an expert decided at the expert's label, confidence 1, sorted by id."""
    decided = expert[expert.index.isin(answers[ITEM_ID].astype(str))]
    if not decided.empty:
        expert_rows = pd.DataFrame(
            {
                ITEM_ID: decided.index.to_numpy(),
                "label": decided.to_numpy(),
                "confidence": 1.0,
                "method": EXPERT_METHOD,
                "n_answers": answers_per_item(answers, decided.index).to_numpy(dtype=np.int64),
            }
        )
        labels = pd.concat(
            [labels[~labels[ITEM_ID].astype(str).isin(decided.index)], expert_rows], ignore_index=True
        )
    return labels.sort_values(ITEM_ID, kind="stable").reset_index(drop=True)


def as_first_asked(answers: pd.DataFrame, gold_ids: pd.Index) -> pd.DataFrame:
    """``answers`` with each gold item's answers cut to those of the first round it was asked in.

    A pool item is asked in one round; a gold item may be asked again in later rounds (``choose_gold`` draws
    each round's gold from all of them) and gather twice the answers or more. Calibrated on all of them, gold
    would look far surer than the pool items the map is applied to (in the demo: 4.3 answers per gold item,
    27 of 28 right, against pool labels 0.88 right on 2 answers). Without a ``round_id`` column, unchanged.
    """
    if "round_id" not in answers.columns:
        return answers
    is_gold = answers[ITEM_ID].astype(str).isin([str(i) for i in gold_ids]).to_numpy()
    first_round = answers["round_id"].groupby(answers[ITEM_ID]).transform("min")
    return answers[~is_gold | (answers["round_id"] == first_round).to_numpy()]
