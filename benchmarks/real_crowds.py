"""Labeling campaigns on real recorded crowds: the movie-review sentences with their 27,746 MTurk answers, and
the LabelMe photos with their 2,547.

    .venv/bin/python benchmarks/real_crowds.py                 # both, 5 seeds, benchmarks/real_crowds/*.toml
    .venv/bin/python benchmarks/real_crowds.py --campaigns photos --seeds 0 1

Protocol (the committed config beside this file says every number): the pool is the 4,999 sentences,
the held-out set the 3,999 test sentences (a held-out source: never asked about). The features are the project's
text featurizer (:mod:`labelflow.tasks.features`: word 1-2-gram + char 2-5-gram TF-IDF, sparse, with a 64-d SVD
view) fitted once on the pool; the model is the project's logistic regression on the sparse rows. The crowd
replays the recorded answers: asking about an item returns its next recorded answer in the file's order, and an
item whose answers are used up gets no more. Per seed: ``n_gold`` pool items at random become gold at their true
labels (each bought ``gold_answers`` answers, paid); a k-means cold start, then rounds of ``batch_size`` items by
margin; each new item gets ``first_answers`` answers, then Dawid-Skene over every answer bought so far (gold
clamped) asks one more answer of each item under ``confidence_target``, for ``extra_waves`` waves, until the
budget (a share of all recorded answers, gold included) is spent. The model is refitted every round on the
Dawid-Skene labels weighted by their confidence, plus the gold items.

Printed per seed: answers paid (gold included), answers per labeled item, held-out accuracy of the last model,
the accuracy of the crowd labels bought, and on the same items the accuracy of majority vote of each item's
first 3 recorded answers (file order) and of Dawid-Skene over ALL recorded answers; plus the clean-label
ceiling: the same featurizer and model fitted on the whole pool at its true labels.

Measured (2026-12-02, 5 seeds, the committed config, 79 s on the shared 2-core machine): ceiling 0.720; held-out
0.716 0.716 0.714 0.723 0.707 (mean 0.715 >= 0.710 = ceiling - 0.01) after paying 8,323 answers (30% of 27,746,
gold included) each; 3,157 items labeled at 2.61 answers per item on average; their crowd labels 0.886 right
where majority vote of their first 3 recorded answers is 0.853 and Dawid-Skene over all recorded answers 0.905.

The photos campaign (benchmarks/real_crowds/photos.toml) is the same loop on the image kind: the project's image
featurizer (colour histogram + HOG at 64 px) and its logistic regression on the standardized descriptors; the
1,000 photos have no test set, so a fixed 20% of them (stratified, seed 0) is held out, never asked about, and the
rest is the pool. Its ceiling is the same model fitted on the whole pool at the true labels.

This is the campaign's loop on the project's pure stages (features, training, selection scores, aggregation),
not the Prefect flow: five seeds of the flow's per-round bookkeeping would not fit the machine's time.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from labelflow.tasks.aggregation.frame import aggregate_answers_frame
from labelflow.tasks.features import TextFeaturizer
from labelflow.tasks.features.base import Featurizer
from labelflow.tasks.features.image import ImageFeaturizer
from labelflow.tasks.selection import cold_start, margin_scores, top_k
from labelflow.tasks.training import TrainingConfig, fit_model

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "crowd-items"
CAMPAIGNS = {name: HERE / "real_crowds" / f"{name}.toml" for name in ("sentences", "photos")}
TRAINING = TrainingConfig(self_training=False)


@dataclass(frozen=True)
class Data:
    labels: list[str]
    pool_ids: np.ndarray
    pool_matrix: sp.csr_matrix | np.ndarray
    pool_dense: np.ndarray
    truth: pd.Series
    held_out_matrix: sp.csr_matrix | np.ndarray
    held_out_labels: np.ndarray
    recorded: dict[str, list[tuple[str, str]]]  # item -> (worker, answer) in the file's order
    n_recorded: int


def load(config: dict[str, Any]) -> Data:
    folder = DATA / config["data"]["folder"]
    items = pd.read_csv(folder / config["data"]["items"], dtype=str)
    answers = pd.read_csv(folder / config["data"]["answers"], dtype=str)
    truth = pd.read_csv(folder / config["data"]["truth"], dtype=str).set_index("question")["truth"]
    featurizer: Featurizer
    if config["data"]["kind"] == "image":
        items["content"] = [str(folder / path) for path in items["image_path"]]
        items, held_out = train_test_split(
            items,
            test_size=config["data"]["held_out_share"],
            stratify=truth[items["item_id"]].to_numpy(),
            random_state=0,
        )
        held_out = held_out.assign(label=truth[held_out["item_id"]].to_numpy())
        featurizer = ImageFeaturizer()
    else:
        items["content"] = items["text"]
        held_out = pd.read_csv(folder / config["data"]["held_out"], dtype=str).rename(
            columns={"text": "content"}
        )
        featurizer = TextFeaturizer()
    featurizer.fit(items["content"].tolist())
    matrix = featurizer.transform(items["content"].tolist())
    recorded: dict[str, list[tuple[str, str]]] = {}
    for item, worker, answer in answers[["question", "worker", "answer"]].itertuples(index=False):
        recorded.setdefault(item, []).append((worker, answer))
    return Data(
        sorted(truth.unique()),
        items["item_id"].to_numpy(dtype=object),
        matrix,
        featurizer.dense_view(matrix),
        truth,
        featurizer.transform(held_out["content"].tolist()),
        held_out["label"].to_numpy(dtype=object),
        recorded,
        len(answers),
    )


class ReplayedCrowd:
    """Each item's recorded answers, in the file's order, one per request; none once they are used up."""

    def __init__(self, recorded: dict[str, list[tuple[str, str]]]) -> None:
        self.recorded = recorded
        self.used: dict[str, int] = {}
        self.bought: list[tuple[str, str, str]] = []

    def ask(self, item: str, n: int, limit: int) -> int:
        start = self.used.get(item, 0)
        stop = min(start + n, limit, len(self.recorded.get(item, [])))
        for worker, answer in self.recorded.get(item, [])[start:stop]:
            self.bought.append((item, worker, answer))
        self.used[item] = max(start, stop)
        return max(stop - start, 0)

    def answers(self) -> pd.DataFrame:
        return pd.DataFrame(self.bought, columns=["item_id", "worker_id", "label"])


def campaign(
    data: Data, config: dict[str, Any], seed: int
) -> tuple[dict[str, float], list[tuple[int, float]]]:
    """One seed's campaign: its figures, and its learning curve (answers paid, held-out accuracy) per round."""
    settings = config["campaign"]
    rng = np.random.default_rng(seed)
    budget = int(settings["budget_share"] * data.n_recorded)
    crowd = ReplayedCrowd(data.recorded)
    gold_ids = rng.choice(data.pool_ids, settings["n_gold"], replace=False)
    gold = data.truth[list(gold_ids)]
    for item in gold_ids:
        crowd.ask(item, settings["gold_answers"], settings["max_answers"])
    position = pd.Series(np.arange(len(data.pool_ids)), index=data.pool_ids)
    asked: set[str] = set(gold_ids)
    model = None
    labels = pd.DataFrame(columns=["item_id", "label", "confidence"])
    curve: list[tuple[int, float]] = []
    while len(crowd.bought) < budget:
        candidates = np.asarray([i for i in data.pool_ids if i not in asked], dtype=object)
        if len(candidates) == 0:
            break
        rows = position[candidates].to_numpy()
        size = min(settings["seed_size"] if model is None else settings["batch_size"], len(candidates))
        size = min(size, max((budget - len(crowd.bought)) // settings["first_answers"], 1))
        if model is None:
            chosen = cold_start(data.pool_dense[rows], size, seed=seed)
        else:
            chosen = top_k(margin_scores(model.predict_proba(data.pool_matrix[rows])), size, rng)
        batch = candidates[chosen]
        asked.update(batch)
        for item in batch:
            affordable = min(settings["first_answers"], budget - len(crowd.bought))
            crowd.ask(item, affordable, settings["max_answers"])
        labels = aggregate_answers_frame(crowd.answers(), data.labels, gold=gold, random_state=seed)
        for _ in range(settings["extra_waves"]):
            unsure = labels.loc[labels["confidence"] < settings["confidence_target"], "item_id"]
            room = max(budget - len(crowd.bought), 0)
            bought = sum(crowd.ask(item, 1, settings["max_answers"]) for item in unsure.to_numpy()[:room])
            if bought == 0:
                break
            labels = aggregate_answers_frame(crowd.answers(), data.labels, gold=gold, random_state=seed)
        train_ids = np.concatenate(
            [labels["item_id"].to_numpy(dtype=object), gold.index.to_numpy(dtype=object)]
        )
        model = fit_model(
            data.pool_matrix[position[train_ids].to_numpy()],
            np.concatenate([labels["label"].to_numpy(dtype=object), gold.to_numpy(dtype=object)]),
            np.concatenate([labels["confidence"].to_numpy(dtype=np.float64), np.ones(len(gold))]),
            data.pool_matrix[:0],
            np.empty(0, dtype=object),
            data.labels,
            TRAINING,
        )
        curve.append(
            (len(crowd.bought), float(np.mean(model.predict(data.held_out_matrix) == data.held_out_labels)))
        )
    assert model is not None
    items = labels["item_id"].to_numpy(dtype=object)
    truth = data.truth[items].to_numpy(dtype=object)
    figures = {
        "paid": float(len(crowd.bought)),
        "items": float(len(items)),
        "per_item": (len(crowd.bought) - len(gold) * settings["gold_answers"]) / max(len(items), 1),
        "held_out": float(np.mean(model.predict(data.held_out_matrix) == data.held_out_labels)),
        "labels": float(np.mean(labels["label"].to_numpy(dtype=object) == truth)),
        "mv3": float(np.mean(majority_of_first(data.recorded, items, 3, seed, data.labels) == truth)),
        "ds_all": float(np.mean(ds_all(data, seed)[items].to_numpy(dtype=object) == truth)),
    }
    return figures, curve


def majority_of_first(
    recorded: dict[str, list[tuple[str, str]]], items: np.ndarray, n: int, seed: int, labels: list[str]
) -> np.ndarray:
    """Majority vote of each item's first ``n`` recorded answers (file order), ties at random."""
    rng = np.random.default_rng(seed)
    votes = []
    for item in items:
        answers = [answer for _, answer in recorded[item][:n]]
        counts = {label: answers.count(label) for label in labels}
        top = [label for label in labels if counts[label] == max(counts.values())]
        votes.append(top[int(rng.integers(len(top)))])
    return np.asarray(votes, dtype=object)


def ds_all(data: Data, seed: int) -> pd.Series:
    answers = pd.DataFrame(
        [(item, worker, answer) for item, rows in data.recorded.items() for worker, answer in rows],
        columns=["item_id", "worker_id", "label"],
    )
    return aggregate_answers_frame(answers, data.labels, random_state=seed).set_index("item_id")["label"]


def ceiling(data: Data) -> float:
    """The same featurizer and model on the whole pool at its true labels, scored on the held-out items."""
    y = data.truth[data.pool_ids].to_numpy(dtype=object)
    model = fit_model(
        data.pool_matrix,
        y,
        np.ones(len(y)),
        data.pool_matrix[:0],
        np.empty(0, dtype=object),
        data.labels,
        TRAINING,
    )
    return float(np.mean(model.predict(data.held_out_matrix) == data.held_out_labels))


def plot_curves(
    name: str, curves: list[list[tuple[int, float]]], seeds: list[int], clean: float, budget: int, path: Path
) -> None:
    """Each seed's learning curve (held-out accuracy after each round against answers paid) and the ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for seed, curve in zip(seeds, curves, strict=True):
        paid, accuracy = zip(*curve, strict=True)
        axes.plot(paid, accuracy, marker="o", markersize=3, linewidth=1, label=f"seed {seed}")
    axes.axhline(
        clean, color="black", linestyle="--", linewidth=1, label=f"ceiling (true labels) {clean:.3f}"
    )
    axes.axhline(clean - 0.01, color="grey", linestyle=":", linewidth=1, label="ceiling - 0.01")
    axes.axvline(budget, color="red", linestyle=":", linewidth=1, label=f"budget ({budget} answers)")
    axes.set_xlabel("answers paid (gold included)")
    axes.set_ylabel("held-out accuracy")
    axes.set_title(f"labelflow on a replayed real crowd: {name}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"learning curve: {path}")


def run(name: str, config_path: Path, seeds: list[int], plot: Path | None = None) -> None:
    """One campaign over ``seeds``: its figures per seed, their mean, and the done-when comparison."""
    config = tomllib.loads(config_path.read_text())
    started = time.perf_counter()
    data = load(config)
    clean = ceiling(data)
    budget = int(config["campaign"]["budget_share"] * data.n_recorded)
    print(
        f"{name}: {len(data.pool_ids)} pool, {len(data.held_out_labels)} held-out, {data.n_recorded} answers "
        f"({config_path.name}, features ready in {time.perf_counter() - started:.0f} s)"
    )
    print(
        f"budget {budget} answers; clean-label ceiling (same featurizer and model, whole pool): {clean:.3f}"
    )
    print(
        f"{'seed':>4} {'paid':>6} {'items':>6} {'ans/item':>8} {'held-out':>8} {'labels':>7} {'MV3':>7} {'DS all':>7}"
    )
    results, curves = [], []
    for seed in seeds:
        result, curve = campaign(data, config, seed)
        results.append(result)
        curves.append(curve)
        print(
            f"{seed:>4} {result['paid']:>6.0f} {result['items']:>6.0f} {result['per_item']:>8.2f} "
            f"{result['held_out']:>8.3f} {result['labels']:>7.3f} {result['mv3']:>7.3f} {result['ds_all']:>7.3f}",
            flush=True,
        )
    mean = {key: float(np.mean([r[key] for r in results])) for key in results[0]}
    print(
        f"mean {mean['paid']:>6.0f} {mean['items']:>6.0f} {mean['per_item']:>8.2f} {mean['held_out']:>8.3f} "
        f"{mean['labels']:>7.3f} {mean['mv3']:>7.3f} {mean['ds_all']:>7.3f}"
    )
    print(
        f"done-when: held-out {mean['held_out']:.3f} vs ceiling - 0.01 = {clean - 0.01:.3f}; paid "
        f"{mean['paid']:.0f} <= {budget}; labels {mean['labels']:.3f} vs MV3 {mean['mv3']:.3f} at "
        f"{mean['per_item']:.2f} answers/item; {time.perf_counter() - started:.0f} s\n",
        flush=True,
    )
    if plot is not None:
        plot_curves(name, curves, seeds, clean, budget, plot / f"real-crowds-{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--campaigns", nargs="+", choices=sorted(CAMPAIGNS), default=list(CAMPAIGNS))
    parser.add_argument("--config", type=Path, help="another campaign config (instead of --campaigns)")
    parser.add_argument(
        "--plot", type=Path, help="a folder to write each campaign's learning curves to (PNG)"
    )
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(
            f"skipped: {DATA} is absent (the shared crowd data is not redistributed with labelflow)"
        )
    chosen = (
        {args.config.stem: args.config} if args.config else {name: CAMPAIGNS[name] for name in args.campaigns}
    )
    for name, path in chosen.items():
        run(name, path, args.seeds, args.plot)


if __name__ == "__main__":
    main()
