"""What escalating the items the crowd disagrees on most to an expert buys, against the crowd alone, at the same
total spend.

    .venv/bin/python benchmarks/escalation.py              # reported: digits seeds 100-109, sentences seeds 0-9
    .venv/bin/python benchmarks/escalation.py --develop    # digits seeds 0-4: where the default was chosen

Protocol, per dataset and seed. A batch of ``N`` pool items and 40 gold items drawn at random (digits: 400 of
sklearn's 1,797 digits, answered by the default simulated crowd seeded with the seed; sentences: 1,000 of the
5,000 movie-review sentences of ``../shared/data/crowd-items/sentiment_polarity``, answered by replaying their
recorded MTurk answers in the file's order, ``integrations/crowd/replay.py``). Gold is answered like any item
(2 answers, paid) and calibrates the confidence, as in a round.

- **crowd only**: the round's default policy, unchanged: 2 answers per item, then waves of one more answer for
  every item whose calibrated Dawid-Skene confidence is under 0.875 (``items_needing_answers``), up to 7, the
  least sure first. What it pays (gold included) is the total spend ``B`` of this seed; an answer costs 1.
- **escalation** (an expert answer costs ``c`` = 5, 10 or 20 crowd answers; a share ``s`` of ``B`` goes to
  experts: ``k = floor(s B / c)`` expert answers): the same policy on a crowd budget of ``B - k c`` (its waves
  stop where the money does, the least sure items served first), then the ``k`` items with the lowest calibrated
  confidence (under the target, as ``items_to_escalate`` picks them) go to a simulated expert who is right with
  probability 0.98 (a wrong answer is another label at random); the labels are then those of
  ``decision_labels(..., expert=...)``: the expert's label wins and is clamped, never calibrating. When fewer
  than ``k`` items are under the target, fewer are escalated and the arm spends less (the spend column says so).

The crowds are pure functions of (item, answer slot), so the budget-limited crowd of an arm is the crowd-only
run's purchases cut at its budget; each arm is then aggregated as a round would aggregate it. Printed: label
accuracy on the N items (mean over seeds), each arm's paired difference to crowd-only with its standard error
(over seeds), and its spend relative to ``B``; CPU time, peak RSS and the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from labelflow.integrations.crowd.base import LabelRequest, VirtualClock
from labelflow.integrations.crowd.replay import ReplayCrowd, ReplayCrowdConfig
from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig
from labelflow.tasks.confidence import DecisionLabels, decision_labels
from labelflow.tasks.dispatch import items_needing_answers
from labelflow.tasks.escalation import items_to_escalate

HERE = Path(__file__).resolve().parent
SENTENCES = HERE.parent.parent / "shared" / "data" / "crowd-items" / "sentiment_polarity"
EXPERT_ACCURACY = 0.98
COSTS = (5, 10, 20)
SHARES = (0.025, 0.05, 0.1, 0.2, 0.3)  # of the total spend, for the experts
TARGET, FIRST, MOST = (
    0.875,
    2,
    7,
)  # the round's defaults: quality.confidence_target, crowd.redundancy, max_answers
N_GOLD = 40
DEVELOP_SEEDS = tuple(range(5))
REPORTED = {"digits": tuple(range(100, 110)), "sentences": tuple(range(10))}
SIZES = {"digits": 400, "sentences": 1000}


@dataclass(frozen=True)
class Draw:
    """One seed's items: the truth of the batch's and the gold's items, and the crowd that answers them."""

    labels: list[str]
    truth: pd.Series  # batch items, then gold
    gold: pd.Series
    crowd: SimulatedCrowd | ReplayCrowd


def draw(dataset: str, seed: int) -> Draw:
    rng = np.random.default_rng(seed)
    n = SIZES[dataset]
    if dataset == "digits":
        from sklearn.datasets import load_digits

        target = load_digits().target
        labels = [str(d) for d in range(10)]
        chosen = rng.choice(len(target), n + N_GOLD, replace=False)
        truth = pd.Series([str(target[i]) for i in chosen], index=[f"digit-{i}" for i in chosen])
        crowd: SimulatedCrowd | ReplayCrowd = SimulatedCrowd(
            SimulatedCrowdConfig(seed=seed), labels, truth.to_dict(), reward_per_answer=1.0
        )
    else:
        all_truth = pd.read_csv(SENTENCES / "truth.csv", dtype=str).set_index("question")["truth"]
        labels = sorted(all_truth.unique())
        truth = all_truth.iloc[rng.choice(len(all_truth), n + N_GOLD, replace=False)]
        crowd = ReplayCrowd(
            ReplayCrowdConfig(answers=str(SENTENCES / "answers.csv")),
            labels,
            reward_per_answer=1.0,
            clock=VirtualClock(),
        )
    return Draw(labels, truth, truth.iloc[n:], crowd)


def ask(crowd: SimulatedCrowd | ReplayCrowd, todo: pd.DataFrame, wave: int) -> pd.DataFrame:
    """One wave: ``n_answers`` more answers on each item of ``todo`` (in its order), as bought."""
    requests = [
        LabelRequest(
            key=f"{item}/w{wave}",
            item_id=str(item),
            round_id=1,
            wave=wave,
            n_answers=int(k),
            answers_before=int(b),
        )
        for item, k, b in zip(todo["item_id"], todo["n_answers"], todo["answers_before"], strict=True)
    ]
    handles = crowd.publish(requests)
    crowd.clock.sleep(10**8)
    by_key = {h.key: k for k, h in enumerate(handles)}
    answers = sorted(crowd.poll(handles), key=lambda a: (by_key[a.request_key], a.answer_id))
    return pd.DataFrame(
        [(a.item_id, a.worker_id, a.label) for a in answers], columns=["item_id", "worker_id", "label"]
    )


def crowd_only(d: Draw) -> pd.DataFrame:
    """Every answer the default policy buys, in the order it buys them (waves; least sure first in a wave)."""
    todo = pd.DataFrame({"item_id": d.truth.index, "n_answers": FIRST, "answers_before": 0})
    bought, wave = [], 1
    used_up: set[str] = (
        set()
    )  # items whose recorded answers ran out: asking again brings none (as in a round)
    while len(todo):
        answers = ask(d.crowd, todo, wave)
        used_up |= set(todo["item_id"].astype(str)) - set(answers["item_id"].astype(str))
        bought.append(answers)
        labels = decide(d, pd.concat(bought, ignore_index=True)).labels
        todo = items_needing_answers(
            labels.sort_values("confidence", kind="stable"), confidence_target=TARGET, max_answers=MOST
        )
        todo = todo[~todo["item_id"].astype(str).isin(used_up)]
        wave += 1
    return pd.concat(bought, ignore_index=True)


def decide(d: Draw, answers: pd.DataFrame, expert: pd.Series | None = None) -> DecisionLabels:
    return decision_labels(
        answers,
        d.labels,
        method="dawid_skene",
        gold=d.gold,
        random_gold=True,
        confidence_target=TARGET,
        expert=expert,
    )


def accuracy(d: Draw, labels: pd.DataFrame) -> float:
    batch = d.truth.iloc[: len(d.truth) - N_GOLD]
    found = labels.set_index("item_id")["label"].reindex(batch.index)
    return float((found.to_numpy() == batch.to_numpy()).mean())


def expert_answers(d: Draw, items: list[str], seed: int) -> pd.DataFrame:
    """A simulated expert: right with probability 0.98, else another label at random."""
    rows = []
    for item in items:
        rng = np.random.default_rng([seed, int.from_bytes(item.encode()[-6:], "big")])
        label = str(d.truth[item])
        if rng.random() >= EXPERT_ACCURACY:
            label = str(rng.choice([x for x in d.labels if x != label]))
        rows.append((item, "expert:1", label))
    return pd.DataFrame(rows, columns=["item_id", "worker_id", "label"])


def run_seed(dataset: str, seed: int) -> dict[tuple[int, float], tuple[float, float, int]]:
    """Accuracy, spend (relative to crowd-only) and items escalated per arm; the crowd-only arm is (0, 0.0)."""
    d = draw(dataset, seed)
    bought = crowd_only(d)
    spend = len(bought)
    base = accuracy(d, decide(d, bought).labels)
    results = {(0, 0.0): (base, 1.0, 0)}
    for cost in COSTS:
        for share in SHARES:
            k = int(share * spend / cost)
            crowd_budget = spend - k * cost
            if crowd_budget < FIRST * len(d.truth):  # not even the first wave: the arm cannot exist
                continue
            answers = bought.iloc[:crowd_budget]
            escalated = items_to_escalate(decide(d, answers).labels, limit=k, below=TARGET)
            expert = expert_answers(d, escalated["item_id"].astype(str).tolist(), seed)
            final = decide(
                d,
                pd.concat([answers, expert], ignore_index=True),
                pd.Series(expert["label"].to_numpy(), index=expert["item_id"].to_numpy()),
            )
            results[(cost, share)] = (
                accuracy(d, final.labels),
                (crowd_budget + len(expert) * cost) / spend,
                len(expert),
            )
    return results


def report(dataset: str, seeds: tuple[int, ...]) -> dict[tuple[int, float], float]:
    """Print the table of ``dataset`` over ``seeds``; returns each arm's mean paired difference."""
    started, cpu = time.monotonic(), time.process_time()
    runs = [run_seed(dataset, seed) for seed in seeds]
    base = np.array([r[(0, 0.0)][0] for r in runs])
    print(
        f"\n== {dataset}: {SIZES[dataset]} items + {N_GOLD} gold, seeds {seeds[0]}-{seeds[-1]} "
        f"({len(seeds)}); expert right {EXPERT_ACCURACY:.0%} ==\n"
        f"crowd only: label accuracy {base.mean():.4f}"
    )
    print(f"{'expert cost':>12}{'share':>7}{'items':>7}{'accuracy':>10}{'diff':>9}{'± se':>8}{'spend':>7}")
    diffs: dict[tuple[int, float], float] = {}
    for cost in COSTS:
        for share in SHARES:
            paired = [(r[(cost, share)], b) for r, b in zip(runs, base, strict=True) if (cost, share) in r]
            if len(paired) < len(runs):
                print(
                    f"{cost:>12}{share:>7.1%}   (on {len(runs) - len(paired)} of {len(runs)} seeds the crowd budget "
                    "left buys no first wave)"
                )
                continue
            acc = np.array([p[0][0] for p in paired])
            diff = acc - np.array([p[1] for p in paired])
            se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            spent = np.mean([p[0][1] for p in paired])
            diffs[(cost, share)] = float(diff.mean())
            items = np.mean([p[0][2] for p in paired]) / SIZES[dataset]
            print(
                f"{cost:>12}{share:>7.1%}{items:>7.1%}{acc.mean():>10.4f}{diff.mean():>+9.4f}{se:>8.4f}"
                f"{spent:>7.2f}"
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"({time.monotonic() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU, peak RSS {rss:.0f} MB, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--develop", action="store_true", help="The development seeds of digits only.")
    parser.add_argument("--datasets", nargs="+", choices=list(REPORTED), default=list(REPORTED))
    args = parser.parse_args()
    if args.develop:
        diffs = report("digits", DEVELOP_SEEDS)
        by_share = {share: np.mean([diffs.get((c, share), np.nan) for c in COSTS]) for share in SHARES}
        print(
            "mean difference over the three costs, by the experts' share of the spend: "
            + ", ".join(f"{share:.1%} {value:+.4f}" for share, value in by_share.items())
        )
        return
    for dataset in args.datasets:
        report(dataset, REPORTED[dataset])


if __name__ == "__main__":
    main()
