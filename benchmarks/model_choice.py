"""Development of ``choose_aggregator``'s rule on the six real crowds: accuracy of each candidate rule and model.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/model_choice.py                 # seeds 0-19, n = 50
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/model_choice.py --seeds 0 5     # seeds 0-4
    # --crowds duck dog ... limits the crowds

For each crowd and draw (n gold items drawn as ``calibration.py`` draws them, development seeds only), every
candidate of ``choose_aggregator`` is scored once by its held-out answer and gold log-likelihoods
(``held_out_scores``) and fitted on every answer with the gold; the non-gold items are scored against the truth and
pooled over the draws. Besides the candidates, two combinations of the default and full Dawid-Skene:

- ``mixture``: the equal-weight average of their posteriors. Its held-out probability of an answer (and of a gold
  label) is the average of theirs — exactly what a 50/50 model average predicts — so the choice can score it in
  closed form from the two models' scores;
- ``full from default``: full Dawid-Skene whose EM starts from the default's confusion matrices.

Rules: keep a default (the default ``dawid_skene``, or ``mixture``) unless the candidate with the largest total
held-out log-likelihood beats it by more than m paired standard errors, over candidate sets with and without
``mixture``. Leave-one-crowd-out: for each crowd, the rule with the largest summed accuracy over the other five
(ties to the rule listed first). Crowd-kit's Dawid-Skene and majority vote on the same draws for the line.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd
from calibration import Crowd, crowd_kit_dawid_skene, draw_gold, load_crowds
from shared_crowds import CROWDS

from labelflow.tasks.aggregation import CANDIDATES, DawidSkene, make_aggregator
from labelflow.tasks.aggregation.choice import HeldOutScores, held_out_scores
from labelflow.tasks.aggregation.frame import FULL_SHRINKAGE

MIXTURE = "mixture"
CURRENT_RULE = "default kept, m = 6"
MARGINS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
# (default, candidates) of each family of rules
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "default kept": ("dawid_skene", CANDIDATES),
    "default kept, mixture a candidate": ("dawid_skene", (*CANDIDATES, MIXTURE)),
    "mixture kept": (MIXTURE, (*CANDIDATES, MIXTURE)),
}


def with_mixture(scores: HeldOutScores) -> tuple[np.ndarray, list[str]]:
    """Candidates x items held-out log-likelihoods, the mixture's added from the default's and full's."""
    names = list(scores.candidates)
    a, b = names.index("dawid_skene"), names.index("full_dawid_skene")
    answer = np.logaddexp(scores.answer_loglik[a], scores.answer_loglik[b]) - np.log(2.0)
    gold = np.logaddexp(scores.gold_loglik[a], scores.gold_loglik[b]) - np.log(2.0)
    mixed = HeldOutScores(
        (MIXTURE,),
        answer[None],
        scores.answer_item,
        gold[None],
        scores.gold_right[:1],
        scores.gold_item,
        scores.n_items,
    )
    return np.vstack([scores.per_item(), mixed.per_item()]), [*names, MIXTURE]


def choose(
    per_item: np.ndarray, names: list[str], default: str, allowed: Sequence[str], margin: float
) -> str:
    rows = [names.index(name) for name in allowed]
    sub = per_item[rows]
    total = sub.sum(axis=1)
    best = int(total.argmax())
    d = list(allowed).index(default)
    se = np.sqrt(sub.shape[1] * (sub[d] - sub[best]).var())
    return allowed[best] if total[best] - total[d] > margin * se else default


def correct(probas: pd.DataFrame, truth: pd.Series) -> np.ndarray:
    frame = probas.reindex(truth.index)
    return (frame.columns.to_numpy()[frame.to_numpy().argmax(axis=1)] == truth.astype(str).to_numpy()).astype(
        float
    )


def run(crowds: list[Crowd], seeds: Sequence[int], n: int) -> None:
    crowd_kit = crowd_kit_dawid_skene()
    right: dict[tuple[str, str], float] = defaultdict(float)
    per_draw: dict[tuple[str, str], list[float]] = defaultdict(list)
    scored: dict[str, float] = defaultdict(float)
    picks: dict[tuple[str, str], list[str]] = defaultdict(list)
    for crowd in crowds:
        started = time.perf_counter()
        for seed in seeds:
            gold = draw_gold(crowd, n, seed)
            others = crowd.truth.drop(gold.index)
            scored[crowd.name] += len(others)
            probas = {}
            for name in CANDIDATES:
                model = make_aggregator(name, crowd.label_names, random_state=seed).fit(crowd.answers, gold)
                probas[name] = model.probas_
            probas[MIXTURE] = (probas["dawid_skene"] + probas["full_dawid_skene"]) / 2.0
            default = DawidSkene(crowd.label_names, random_state=seed).fit(crowd.answers, gold)
            warm = dict(zip(default.workers_, default.errors_, strict=True))
            full = DawidSkene(crowd.label_names, shrinkage=FULL_SHRINKAGE, random_state=seed)
            probas["full from default"] = full.fit(crowd.answers, gold, warm_start=warm).probas_
            if crowd_kit is not None:
                probas["crowd-kit DS"] = crowd_kit(crowd.answers, gold)[0]
            hits = {name: correct(p, others).sum() for name, p in probas.items()}
            for name, hit in hits.items():
                right[crowd.name, name] += hit
                per_draw[crowd.name, name].append(hit / len(others))
            per_item, names = with_mixture(
                held_out_scores(crowd.answers, gold, label_names=crowd.label_names, random_state=seed)
            )
            for family, (kept, allowed) in FAMILIES.items():
                for margin in MARGINS:
                    rule = f"{family}, m = {margin:g}"
                    chosen = choose(per_item, names, kept, allowed, margin)
                    picks[crowd.name, rule].append(chosen)
                    right[crowd.name, rule] += hits[chosen]
                    per_draw[crowd.name, rule].append(hits[chosen] / len(others))
        print(f"  {crowd.name}: {time.perf_counter() - started:.0f} s", flush=True)
    names = [crowd.name for crowd in crowds]
    accuracy = {key: value / scored[key[0]] for key, value in right.items()}
    rows = list(dict.fromkeys(name for _, name in accuracy))
    print(f"\nPooled non-gold accuracy, seeds {seeds[0]}-{seeds[-1]}, n = {n} gold")
    print(f"{'model or rule':<44}" + "".join(f"{c[:9]:>10}" for c in names) + f"{'mean':>8}")
    for row in rows:
        values = [accuracy[c, row] for c in names]
        print(f"{row:<44}" + "".join(f"{v:>10.4f}" for v in values) + f"{np.mean(values):>8.4f}")
    rules = [row for row in rows if ", m = " in row]
    print("\nWhat each rule picked, per crowd (counts over draws):")
    for rule in rules:
        print(
            f"  {rule}: "
            + "; ".join(
                f"{c} " + ", ".join(f"{k} {v}" for k, v in pd.Series(picks[c, rule]).value_counts().items())
                for c in names
            )
        )
    print(
        "\nLeave-one-crowd-out (largest summed accuracy over the other crowds; ties to the rule listed first):"
    )
    chosen = []
    for held in names:
        total = {rule: sum(accuracy[c, rule] for c in names if c != held) for rule in rules}
        top = max(total.values())
        chosen.append(best := next(rule for rule in rules if total[rule] == top))
        print(f"  without {held:<19} -> {best} ({top:.4f})")
    print(
        "\nPaired differences in accuracy (mean over draws +- its standard error), per crowd and of the crowds' mean:"
    )
    for rule in dict.fromkeys(chosen):
        for against in (CURRENT_RULE, "crowd-kit DS"):
            if (names[0], against) not in per_draw:
                continue
            diff = np.array([np.subtract(per_draw[c, rule], per_draw[c, against]) for c in names])
            cells = [
                f"{d.mean():+.4f} +- {d.std(ddof=1) / np.sqrt(len(d)):.4f}"
                for d in [*diff, diff.mean(axis=0)]
            ]
            print(
                f"  {rule} - {against}:\n    "
                + " | ".join(f"{c} {v}" for c, v in zip([*names, "mean"], cells, strict=True))
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", nargs=2, type=int, default=(0, 20), help="development seeds [start, stop)")
    parser.add_argument("--gold", type=int, default=50)
    parser.add_argument("--crowds", nargs="+", choices=list(CROWDS), help="only these crowds")
    args = parser.parse_args()
    if args.seeds[0] >= 100:
        raise SystemExit("seeds 100-119 are the reported draws: never develop on them")
    started, started_cpu = time.perf_counter(), time.process_time()
    crowds = [crowd for crowd in load_crowds() if not args.crowds or crowd.name in args.crowds]
    run(crowds, list(range(*args.seeds)), args.gold)
    print(f"\n{time.perf_counter() - started:.0f} s wall, {time.process_time() - started_cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
