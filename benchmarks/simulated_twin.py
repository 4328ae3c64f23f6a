"""The simulated twin of each real crowd: does a simulator fitted to a crowd's answers buy what the crowd buys?

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/simulated_twin.py             # 20 simulations per crowd
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/simulated_twin.py --develop   # how the settings were chosen

For each real crowd of ../shared/data (duck, product, dog, face, sentiment_polarity, labelme) the simulator is
fitted to all of the crowd's answers and its truth (``labelflow.tasks.crowd_model.fit_crowd_profile``, what
``crowd.simulated.fit_from`` + ``fit_truth`` do), and the very ``SimulatedCrowd`` backend the pipeline uses
answers k = 3 times each of the crowd's items that really got at least 3 answers, with their real truth. Label
accuracy of majority vote and of our default (Dawid-Skene) on the twin — mean over the simulations (crowd seeds
0..n-1), with its standard error — is printed beside the real figure: the same items, their first 3 answers in
the file's order (majority vote's ties broken at random: mean over as many tie-breaking seeds).

The fit's one setting, the shrinkage of worker confusion rows (``PRIOR_ANSWERS``), was chosen with
``--develop --simulations 5`` on the development crowds duck, dog and sentiment_polarity only (the candidate whose worst
|twin - real| majority-vote gap over them is smallest); product, face and labelme are the check crowds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from shared_crowds import CROWDS

from labelflow.integrations.crowd.base import LabelRequest, VirtualClock
from labelflow.integrations.crowd.simulated import CrowdProfile, SimulatedCrowd, SimulatedCrowdConfig
from labelflow.tasks.aggregation import DawidSkene, MajorityVote, from_shared_csv, read_shared_truth
from labelflow.tasks.crowd_model import PRIOR_ANSWERS, fit_crowd_profile

DEVELOPMENT = ("duck", "dog", "sentiment_polarity")
K = 3


@dataclass(frozen=True)
class Crowd:
    name: str
    answers: pd.DataFrame  # item_id, worker_id, label (file order)
    truth: pd.Series
    label_names: list[str]
    items: list[str]  # items with truth and at least K answers


def load_crowd(name: str) -> Crowd:
    folder = CROWDS[name]
    answers = from_shared_csv(folder / "answers.csv")
    truth = read_shared_truth(folder / "truth.csv")
    truth.index = truth.index.astype(str)
    answers = answers.astype({"item_id": str, "worker_id": str, "label": str})
    labels = sorted(set(answers["label"]) | set(truth.astype(str)))
    counts = answers["item_id"].value_counts()
    items = sorted(set(counts.index[counts >= K]) & set(truth.index))
    return Crowd(name, answers, truth.astype(str), labels, items)


def accuracies(answers: pd.DataFrame, crowd: Crowd, seed: int) -> tuple[float, float]:
    """Label accuracy of majority vote (ties at random by ``seed``) and of our default on ``answers``."""
    truth = crowd.truth.loc[crowd.items]
    mv = MajorityVote(crowd.label_names, random_state=seed).fit_predict(answers).reindex(truth.index)
    ds = DawidSkene(crowd.label_names).fit_predict(answers).reindex(truth.index)
    return float((mv == truth).mean()), float((ds == truth).mean())


def real_figures(crowd: Crowd, n: int) -> tuple[float, float]:
    first = crowd.answers[crowd.answers["item_id"].isin(crowd.items)].groupby("item_id", sort=False).head(K)
    mv = [accuracies(first, crowd, seed)[0] for seed in range(n)]
    return float(np.mean(mv)), accuracies(first, crowd, 0)[1]


def twin_answers(crowd: Crowd, profile: CrowdProfile, seed: int) -> pd.DataFrame:
    """K answers on every item from the SimulatedCrowd backend fitted to the crowd, crowd seed ``seed``."""
    backend = SimulatedCrowd(
        SimulatedCrowdConfig(seed=seed, mean_latency_minutes=1.0),
        crowd.label_names,
        crowd.truth.loc[crowd.items].to_dict(),
        reward_per_answer=0.0,
        clock=VirtualClock(),
        profile=profile,
    )
    requests = [
        LabelRequest(key=f"twin/{item}", item_id=item, round_id=1, wave=1, n_answers=K)
        for item in crowd.items
    ]
    handles = backend.publish(requests)
    backend.clock.sleep(365 * 24 * 3600)
    given = backend.poll(handles)
    return pd.DataFrame(
        {
            "item_id": [a.item_id for a in given],
            "worker_id": [a.worker_id for a in given],
            "label": [a.label for a in given],
        }
    )


def twin_figures(crowd: Crowd, profile: CrowdProfile, n: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.array([accuracies(twin_answers(crowd, profile, seed), crowd, seed) for seed in range(n)])
    return pairs[:, 0], pairs[:, 1]


def report(names: Sequence[str], n: int) -> None:
    print(
        f"k = {K} answers per item; twin: mean ± standard error over {n} simulations (crowd seeds 0-{n - 1})"
    )
    print(
        f"{'crowd':20} {'items':>6} {'real MV':>8} {'twin MV':>14} {'gap':>7} {'real DS':>8} {'twin DS':>14}  set"
    )
    gaps = []
    for name in names:
        started = time.perf_counter()
        crowd = load_crowd(name)
        profile = fit_crowd_profile(crowd.answers, crowd.label_names, crowd.truth)
        real_mv, real_ds = real_figures(crowd, n)
        mv, ds = twin_figures(crowd, profile, n)
        gap = float(mv.mean() - real_mv)
        gaps.append(abs(gap))
        se = np.sqrt(n)
        print(
            f"{name:20} {len(crowd.items):6d} {real_mv:8.3f} {mv.mean():8.3f} ± {mv.std(ddof=1) / se:.3f} "
            f"{gap:+7.3f} {real_ds:8.3f} {ds.mean():8.3f} ± {ds.std(ddof=1) / se:.3f}  "
            f"{'development' if name in DEVELOPMENT else 'check'}  ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    print(f"largest |twin - real| majority-vote gap: {max(gaps):.3f} (done when <= 0.03 on every crowd)")


def develop(n: int) -> None:
    """The shrinkage candidates on the development crowds only."""
    print(f"--develop: development crowds {', '.join(DEVELOPMENT)}; {n} simulations each")
    crowds = [load_crowd(name) for name in DEVELOPMENT]
    reals = {crowd.name: real_figures(crowd, n)[0] for crowd in crowds}
    for prior in (1.0, 3.0, 10.0, 30.0):
        gaps = []
        for crowd in crowds:
            profile = fit_crowd_profile(crowd.answers, crowd.label_names, crowd.truth, prior_answers=prior)
            gaps.append(float(twin_figures(crowd, profile, n)[0].mean() - reals[crowd.name]))
        shown = ", ".join(f"{c.name} {g:+.3f}" for c, g in zip(crowds, gaps, strict=True))
        print(f"prior_answers {prior:5.1f}: MV gap {shown}; worst {max(map(abs, gaps)):.3f}", flush=True)
    print(f"(the default is PRIOR_ANSWERS = {PRIOR_ANSWERS})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--simulations", type=int, default=20, help="simulations per crowd (default 20)")
    parser.add_argument("--crowds", nargs="+", choices=list(CROWDS), default=list(CROWDS))
    parser.add_argument(
        "--develop", action="store_true", help="compare the shrinkage candidates (development crowds)"
    )
    args = parser.parse_args()
    missing = [str(CROWDS[name]) for name in args.crowds if not CROWDS[name].is_dir()]
    if missing:
        raise SystemExit(f"shared crowds not found (they live beside the repo in ../shared): {missing}")
    if args.develop:
        develop(args.simulations)
    else:
        report(args.crowds, args.simulations)


if __name__ == "__main__":
    main()
