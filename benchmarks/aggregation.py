"""Quality-control figures, printed side by side with crowd-kit and reference figures measured with it.

    .venv/bin/pip install -e '.[bench]'          # crowd-kit, benchmark-only
    .venv/bin/python benchmarks/aggregation.py           # everything (crowd-kit DS on 6M answers takes minutes)
    .venv/bin/python benchmarks/aggregation.py --quick   # small sizes, no 6M run

1. accuracy on the four real crowds of ../shared/data/crowd, ours against crowd-kit's MajorityVote,
   DawidSkene and GLAD (crowd-kit as measured before: duck .889, product .940, dog .843, face .640);
2. the two synthetic crowds (3 labels, 5 answers per item, one worker per 500 answers, 70% good workers at
   accuracy 0.6-0.9, 20% uniform spammers, 10% biased; seed 0; ids as strings): accuracy against the
   Bayes-optimal oracle that knows the true confusion matrices, and calibration (of items with posterior >= 0.99,
   the share labeled correctly);
3. speed and memory: 100k, 1M and 6M answers read from a CSV (string ids), from the DataFrame to labels, each
   run in a fresh subprocess so its peak RSS is that of the whole process (crowd-kit beside ours);
4. cost on the simulated crowd (digits' 10 labels, the default crowd): answers paid and label accuracy for fixed
   k = 3 and k = 5 against adaptive redundancy (k0 answers, +1 per wave while the posterior is below tau, up to
   k_max: the product's own policy function), the calibration of the default there, and the cheapest policy
   that reaches fixed k = 5's accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from labelflow.flows.config import CrowdConfig, QualityConfig  # noqa: E402
from labelflow.tasks.aggregation import (  # noqa: E402
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    Wawa,
    aggregate_answers_frame,
    choose_aggregator,
    from_shared_csv,
    make_aggregator,
    read_shared_truth,
)
from labelflow.tasks.calibration import calibrate_from_gold  # noqa: E402
from labelflow.tasks.dispatch import items_needing_answers  # noqa: E402
from labelflow.tasks.synthetic import oracle_posteriors, synthetic_crowd  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "crowd"
CROWDS = ("duck", "product", "dog", "face")
CROWD_KIT_ANCHORS = {"duck": 0.889, "product": 0.940, "dog": 0.843, "face": 0.640}
OURS = {
    "MV": MajorityVote,
    "Wawa": Wawa,
    "DS": DawidSkene,
    "OneCoinDS": OneCoinDawidSkene,
}


def crowd_kit_methods() -> dict[str, object]:
    try:
        from crowdkit.aggregation import GLAD
        from crowdkit.aggregation import DawidSkene as CKDawidSkene
        from crowdkit.aggregation import MajorityVote as CKMajorityVote
    except ImportError:
        return {}
    return {"ck MV": CKMajorityVote(), "ck DS": CKDawidSkene(n_iter=100), "ck GLAD": GLAD()}


def accuracy(labels: pd.Series, truth: pd.Series) -> float:
    return float((labels.astype(str).reindex(truth.index) == truth).mean())


def calibration(probas: pd.DataFrame, labels: pd.Series, truth: pd.Series) -> tuple[float, int]:
    sure = probas.max(axis=1).reindex(truth.index) >= 0.99
    right = labels.reindex(truth.index) == truth
    return (float(right[sure].mean()) if sure.any() else float("nan")), int(sure.sum())


# ------------------------------------------------------------------------------------------------ real crowds


def real_crowds() -> None:
    print("\n== 1. Accuracy on the real crowds (../shared/data/crowd) ==")
    if not (SHARED / "dog" / "answers.csv").exists():
        print(f"skipped: {SHARED} not found")
        return
    ck = crowd_kit_methods()
    if not ck:
        print("(crowd-kit not installed: pip install -e '.[bench]' to run it beside ours)")
    names = [*OURS, *ck]
    print(f"{'crowd':<8}" + "".join(f"{n:>11}" for n in names) + f"{'ck (ref.)':>11}")
    table: dict[str, list[float]] = {n: [] for n in names}
    for crowd in CROWDS:
        answers = from_shared_csv(SHARED / crowd / "answers.csv")
        truth = read_shared_truth(SHARED / crowd / "truth.csv")
        truth = truth[truth.index.isin(answers["item_id"])]
        labels = sorted(set(answers["label"]) | set(truth))
        row = []
        for estimator in OURS.values():
            row.append(accuracy(estimator(labels).fit(answers).labels_, truth))
        for method in ck.values():
            frame = answers.rename(columns={"item_id": "task", "worker_id": "worker"})
            row.append(accuracy(method.fit_predict(frame), truth))  # type: ignore[attr-defined]
        for name, value in zip(names, row, strict=True):
            table[name].append(value)
        print(f"{crowd:<8}" + "".join(f"{v:>11.4f}" for v in row) + f"{CROWD_KIT_ANCHORS[crowd]:>11.3f}")
    print(
        f"{'mean':<8}"
        + "".join(f"{np.mean(table[n]):>11.4f}" for n in names)
        + f"{np.mean(list(CROWD_KIT_ANCHORS.values())):>11.3f}"
    )


# ------------------------------------------------------------------------------------------------ synthetic


def synthetic(n_answers: int) -> None:
    print(f"\n== 2. Synthetic crowds, {n_answers:,} answers, seed 0: oracle gap and calibration ==")
    print(f"{'crowd':<16}{'method':<11}{'accuracy':>9}{'- oracle':>10}{'P(right | p>=.99)':>19}{'items':>9}")
    for kind in ("one_coin", "class_confusion"):
        crowd = synthetic_crowd(n_answers, kind=kind, seed=0)
        oracle = oracle_posteriors(crowd)
        oracle_labels = pd.Series(
            np.asarray(crowd.label_names)[oracle.argmax(axis=1)], index=crowd.truth.index
        )
        oracle_probas = pd.DataFrame(oracle, index=crowd.truth.index, columns=crowd.label_names)
        oracle_acc = accuracy(oracle_labels, crowd.truth)
        share, n = calibration(oracle_probas, oracle_labels, crowd.truth)
        print(f"{kind:<16}{'oracle':<11}{oracle_acc:>9.4f}{'':>10}{share:>19.4f}{n:>9}")
        for name, estimator in OURS.items():
            model = estimator(crowd.label_names).fit(crowd.answers)
            acc = accuracy(model.labels_, crowd.truth)
            share, n = calibration(model.probas_, model.labels_, crowd.truth)
            print(f"{'':<16}{name:<11}{acc:>9.4f}{acc - oracle_acc:>+10.4f}{share:>19.4f}{n:>9}")
        for name, method in crowd_kit_methods().items():
            if name == "ck GLAD" and n_answers > 200_000:
                continue  # GLAD is slow; its accuracy on the real crowds is above
            frame = crowd.answers.rename(columns={"item_id": "task", "worker_id": "worker"})
            labels = method.fit_predict(frame)  # type: ignore[attr-defined]
            acc = accuracy(labels, crowd.truth)
            print(f"{'':<16}{name:<11}{acc:>9.4f}{acc - oracle_acc:>+10.4f}")


# ------------------------------------------------------------------------------------------------ speed


# Gold items drawn at random for the "with choice and calibration" run (the demo's projects use 20-100).
SPEED_GOLD = 100


def _child(method: str, csv: str) -> None:
    """Runs in a fresh process: read the CSV (not timed), aggregate (timed), report seconds and peak RSS.

    ``ours+auto`` is what ``labelflow aggregate --method auto`` does with gold: ``choose_aggregator`` on the
    answers and :data:`SPEED_GOLD` random gold items, then ``calibrate_from_gold`` with the chosen model (which
    fits it once)."""
    frame = pd.read_csv(csv)
    labels_names = sorted(str(x) for x in frame["label"].unique())
    started, started_cpu = time.perf_counter(), time.process_time()
    if method == "ours":
        labels = DawidSkene(labels_names).fit(frame).labels_
    elif method == "ours+auto":
        truth = pd.read_csv(csv.replace(".csv", "_truth.csv"), index_col=0).iloc[:, 0]
        gold = truth.iloc[np.random.default_rng(0).choice(len(truth), SPEED_GOLD, replace=False)]
        chosen = choose_aggregator(frame, gold, label_names=labels_names).method
        result = calibrate_from_gold(frame, gold, lambda: make_aggregator(chosen, labels_names))
        labels = result.labels
    else:
        from crowdkit.aggregation import DawidSkene as CKDawidSkene

        ck_frame = frame.rename(columns={"item_id": "task", "worker_id": "worker"})
        labels = CKDawidSkene(n_iter=100).fit_predict(ck_frame)
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: KiB
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_gb": peak_gb, "n_labels": len(labels)}))


def speed(sizes: list[int], crowd_kit_max: int) -> None:
    print(
        f"\n== 3. Speed: from the DataFrame (read from CSV, string ids) to labels; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} =="
    )
    print("(each run in its own process; peak = that whole process's max RSS, reading the CSV included;")
    print(f" ours+auto = model choice and calibration on {SPEED_GOLD} random gold items, its fit included)")
    has_ck = bool(crowd_kit_methods())
    print(f"{'answers':>10}{'method':>12}{'seconds':>10}{'CPU s':>8}{'peak GB':>10}{'load':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            csv = Path(folder) / f"crowd_{n}.csv"
            crowd = synthetic_crowd(n, seed=0)
            crowd.answers.to_csv(csv, index=False)
            crowd.truth.to_csv(Path(folder) / f"crowd_{n}_truth.csv")
            del crowd
            methods = ["ours", "ours+auto"] + (["crowd-kit"] if has_ck and n <= crowd_kit_max else [])
            for method in methods:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", method, str(csv)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{n:>10,}{method:>12}{result['seconds']:>10.2f}{result['cpu']:>8.2f}"
                    f"{result['peak_gb']:>10.2f}{os.getloadavg()[0]:>6.1f}",
                    flush=True,
                )
    print(
        "targets: ours 6M <= 10 s and <= 1.2 GB, 1M <= 1.5 s; ours+auto at most 50% more than ours; "
        "crowd-kit DS 6M as measured before ~196 s, 1.8 GB"
    )


# ------------------------------------------------------------------------------------------------ cost


def simulated_rounds(
    n_items: int, seed: int, k0: int, k_max: int, tau: float
) -> tuple[float, int, float, int]:
    """One batch of ``n_items`` digits-like items on the default simulated crowd: ``k0`` answers each, then waves
    of one more answer for the items the product's own policy picks (``items_needing_answers``: default
    aggregation's confidence below ``tau``, fewer than ``k_max`` answers); ``k0 == k_max`` is fixed redundancy.
    Returns label accuracy, answers paid, calibration share and items with posterior >= 0.99."""
    from labelflow.integrations.crowd.base import LabelRequest
    from labelflow.integrations.crowd.simulated import SimulatedCrowd, SimulatedCrowdConfig

    names = [str(d) for d in range(10)]
    rng = np.random.default_rng(seed)
    truth = pd.Series(
        [names[int(t)] for t in rng.integers(0, 10, n_items)], index=[f"i{i}" for i in range(n_items)]
    )
    crowd = SimulatedCrowd(SimulatedCrowdConfig(seed=seed), names, truth.to_dict(), reward_per_answer=0.05)
    todo = pd.DataFrame({"item_id": truth.index, "n_answers": k0, "answers_before": 0})
    frames = []
    wave = 1
    while len(todo):
        requests = [
            LabelRequest(
                key=f"{item}/w{wave}",
                item_id=item,
                round_id=1,
                wave=wave,
                n_answers=int(n),
                answers_before=int(b),
            )
            for item, n, b in zip(todo["item_id"], todo["n_answers"], todo["answers_before"], strict=True)
        ]
        handles = crowd.publish(requests)
        crowd.clock.sleep(10**7)
        frames.append(
            pd.DataFrame(
                [(a.item_id, a.worker_id, a.label) for a in crowd.poll(handles)],
                columns=["item_id", "worker_id", "label"],
            )
        )
        labels = aggregate_answers_frame(pd.concat(frames, ignore_index=True), names)
        todo = items_needing_answers(labels, confidence_target=tau, max_answers=k_max)
        wave += 1
    by_item = labels.set_index("item_id")
    probas = by_item[["confidence"]]
    share, n_sure = calibration(probas, by_item["label"], truth)
    return accuracy(by_item["label"], truth), int(by_item["n_answers"].sum()), share, n_sure


def cost(n_items: int, seeds: list[int]) -> None:
    print(f"\n== 4. Cost on the simulated crowd: {n_items} items x seeds {seeds}, default Dawid-Skene ==")
    default = (CrowdConfig().redundancy, QualityConfig().confidence_target, CrowdConfig().max_answers)
    grid = [(k0, tau, k_max) for k0 in (2, 3) for tau in (0.875, 0.9, 0.95, 0.99) for k_max in (5, 7)]
    policies = [("fixed k=3", 3, 1.0, 3), ("fixed k=5", 5, 1.0, 5)]
    policies += [
        (
            f"adaptive k0={k0} tau={tau} kmax={k_max}" + (" *" if (k0, tau, k_max) == default else ""),
            k0,
            tau,
            k_max,
        )
        for k0, tau, k_max in ([default] if default not in grid else []) + grid
    ]
    print(f"{'policy':<32}{'answers':>9}{'per item':>9}{'label acc':>10}{'P(right|p>=.99)':>17}")
    results: dict[str, tuple[float, float]] = {}
    for name, k0, tau, k_max in policies:
        runs = [simulated_rounds(n_items, seed, k0, k_max, tau) for seed in seeds]
        acc = float(np.mean([r[0] for r in runs]))
        paid = float(np.mean([r[1] for r in runs]))
        sure = sum(r[3] for r in runs)
        share = sum(r[2] * r[3] for r in runs) / max(sure, 1)
        results[name] = (paid, acc)
        fixed5 = results.get("fixed k=5", (0.0, 0.0))[0]
        ratio = f"  ({paid / fixed5:.0%} of k=5)" if fixed5 and name.startswith("adaptive") else ""
        print(f"{name:<32}{paid:>9.0f}{paid / n_items:>9.2f}{acc:>10.4f}{share:>17.4f}{ratio}")
    fixed5_paid, fixed5_acc = results["fixed k=5"]
    reaching = {n: r for n, r in results.items() if n.startswith("adaptive") and r[1] >= fixed5_acc}
    print("* the product's default policy (CrowdConfig, QualityConfig)")
    if reaching:
        name, (paid, acc) = min(reaching.items(), key=lambda item: item[1][0])
        print(
            f"cheapest adaptive policy at fixed k=5's accuracy: {name} ({paid / fixed5_paid:.0%} of its answers)"
        )
    else:
        print("no adaptive policy reaches fixed k=5's accuracy")
    print("target: fixed k=5's label accuracy with <= 60% of its answers")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Small sizes; no 6M run; fewer seeds.")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "CSV"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["real", "synthetic", "speed", "cost"], action="append")
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    only = set(args.only or ["real", "synthetic", "speed", "cost"])
    if "real" in only:
        real_crowds()
    if "synthetic" in only:
        synthetic(100_000 if args.quick else 1_000_000)
    if "speed" in only:
        speed(
            [100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 6_000_000],
            1_000_000 if args.quick else 6_000_000,
        )
    if "cost" in only:
        cost(300 if args.quick else 1000, [0, 1] if args.quick else [0, 1, 2])


if __name__ == "__main__":
    main()
