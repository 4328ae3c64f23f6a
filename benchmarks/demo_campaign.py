"""The demo campaign's figures across crowd seeds: held-out accuracy after at most N paid answers.

    .venv/bin/python benchmarks/demo_campaign.py --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/demo_campaign.py --seeds 3 4 5 6 7 --pseudo-labels   # + each round's self-training

Each seed draws a different simulated crowd (worker mix, answers, timing) and a different gold/held-out split;
everything else is the default config of `labelflow demo`. Prints one row per seed and the mean. The last column
is the ceiling: the same model fitted on the whole pool with its true labels (no crowd, no budget), scored on the
same held-out items. (An anchor measured before: random sampling + majority vote on this crowd, 0.81 after 2,019
answers.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labelflow.flows.project import Project

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--answers",
        type=int,
        nargs="+",
        default=[1500],
        help="Report accuracy after at most this many answers (several: one summary line each).",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="Override a config value, e.g. --set quality.method=majority_vote",
    )
    parser.add_argument(
        "--pseudo-labels",
        action="store_true",
        help="Also print, per round, the self-training threshold, how many pseudo-labels the hidden truth "
        "confirms, and the precision the gold items bound them at.",
    )
    args = parser.parse_args()

    from labelflow.flows.campaign import labeling_campaign
    from labelflow.flows.config import ProjectConfig, parse_config
    from labelflow.flows.project import Project
    from labelflow.flows.reporting import learning_curve

    print(
        f"{'seed':>4} {'answers':>8} {'rounds':>6} {'label acc':>9} {'model acc':>9} {'seconds':>8} "
        f"{'clean-label ceiling':>19} {'last labels: right':>18} {'conf':>5} {'ECE':>5} {'gold ans':>8} "
        f"{'calibrated on':>13}"
    )
    ceilings = []
    curves = []
    pseudo_rows: list[dict[str, float | None]] = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            data = ProjectConfig().model_dump()
            data.update(workdir=folder, store_url=f"sqlite:///{Path(folder) / 'store.db'}")
            data["crowd"]["simulated"]["seed"] = seed
            data["dataset"]["seed"] = seed
            data["selection"]["seed"] = seed
            for override in args.overrides:
                key, value = override.split("=", 1)
                section, name = key.split(".", 1)
                data[section][name] = (
                    type(data[section][name])(value)
                    if not isinstance(data[section][name], bool)
                    else value == "true"
                )
            config = parse_config(data)
            started = time.perf_counter()
            labeling_campaign(config, folder)
            seconds = time.perf_counter() - started
            project = Project(config, Path(folder))
            curve = learning_curve(project.store)
            ceilings.append(clean_label_ceiling(project))
            reliability = crowd_label_reliability(project)
            if args.pseudo_labels:
                pseudo_rows.extend(pseudo_label_rounds(project, seed))
            project.close()
        curves.append(curve)
        within = curve[curve["answers_total_bought"] <= max(args.answers)].iloc[-1]
        print(
            f"{seed:>4} {int(within['answers_total_bought']):>8} {int(within['round']):>6} "
            f"{within['label_accuracy']:>9.3f} {within['model_accuracy']:>9.3f} {seconds:>8.1f} "
            f"{ceilings[-1]:>19.3f} {reliability}"
        )
    for answers in args.answers:
        rows = [curve[curve["answers_total_bought"] <= answers].iloc[-1] for curve in curves]
        finals = [float(row["model_accuracy"]) for row in rows]
        labels = [float(row["label_accuracy"]) for row in rows]
        print(
            f"mean held-out accuracy after <= {answers} answers: {statistics.mean(finals):.3f} "
            f"(min {min(finals):.3f}); mean crowd label accuracy {statistics.mean(labels):.3f}"
        )
    print(f"clean-label ceiling of the model: mean {statistics.mean(ceilings):.3f}")
    if pseudo_rows:
        print_pseudo_label_rounds(pseudo_rows)


def pseudo_label_rounds(project: Project, seed: int) -> list[dict[str, float | None]]:
    """Each completed round's self-training figures, from the round summaries the store keeps."""
    rounds = project.store.rounds()
    return [
        {
            "seed": seed,
            "round": int(row["number"]),
            "threshold": row["summary"].get("self_training_threshold"),
            "pseudo_labels": row["summary"].get("pseudo_labels"),
            "right": row["summary"].get("pseudo_label_accuracy"),
            "bound": row["summary"].get("pseudo_label_precision_bound"),
        }
        for _, row in rounds[rounds["status"] == "completed"].iterrows()
    ]


def print_pseudo_label_rounds(rows: list[dict[str, float | None]]) -> None:
    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    print(
        f"\n{'seed':>4} {'round':>5} {'threshold':>9} {'pseudo-labels':>13} {'right':>6} {'gold bound':>10}"
    )
    for row in rows:
        print(
            f"{row['seed']:>4} {row['round']:>5} {shown(row['threshold']):>9} {row['pseudo_labels']:>13} "
            f"{shown(row['right']):>6} {shown(row['bound']):>10}"
        )


def crowd_label_reliability(project: Project) -> str:
    """The campaign's crowd labels (each item's latest, as the last round left them) against the hidden truth:
    share right, mean confidence, ECE (10 bins); the mean answers per gold item as first asked; and how many gold
    items the last round's confidence was calibrated on (0: uncalibrated)."""
    from labelflow.contracts import ITEM_ID, ItemSet
    from labelflow.tasks.calibration import expected_calibration_error

    store = project.store
    labels = store.labels(sources=["crowd"])
    labels = labels[labels["method"] != "expert"]
    right = labels["label"].to_numpy() == project.dataset.hidden_truth.reindex(labels[ITEM_ID]).to_numpy()
    confidence = labels["confidence"].to_numpy(dtype=float)
    answers = store.answers()
    gold = answers[answers[ITEM_ID].isin(project.dataset.frame(ItemSet.GOLD)[ITEM_ID])]
    first = gold[gold["round_id"] == gold.groupby(ITEM_ID)["round_id"].transform("min")]
    rounds = store.rounds()
    last_round = rounds[rounds["status"] == "completed"].iloc[-1]
    return (
        f"{right.mean():>18.3f} {confidence.mean():>5.3f} {expected_calibration_error(confidence, right, 10):>5.3f} "
        f"{first.groupby(ITEM_ID).size().mean():>8.2f} {last_round['summary'].get('calibration_gold', 0):>13}"
    )


def clean_label_ceiling(project: Project) -> float:
    """Held-out accuracy of the project's model fitted on every pool and gold item at its true label."""
    import numpy as np

    from labelflow.contracts import ITEM_ID, ItemSet
    from labelflow.tasks.training import evaluate, fit_model

    dataset = project.dataset
    known = dataset.items[dataset.items["item_set"].isin([ItemSet.POOL.value, ItemSet.GOLD.value])]
    held_out = dataset.frame(ItemSet.HELD_OUT)
    features = dataset.feature_columns
    model = fit_model(
        known[features].to_numpy(dtype=np.float64),
        dataset.hidden_truth.reindex(known[ITEM_ID]).to_numpy(dtype=object),
        np.ones(len(known)),
        np.empty((0, len(features))),
        np.empty(0, dtype=object),
        project.label_names,
        project.config.training.model_copy(update={"self_training": False}),
    )
    truth = dataset.hidden_truth.reindex(held_out[ITEM_ID]).to_numpy(dtype=object)
    return evaluate(model, held_out[features].to_numpy(dtype=np.float64), truth)["accuracy"]


if __name__ == "__main__":
    main()
