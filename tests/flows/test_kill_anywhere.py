"""Kill a round anywhere: ``labelflow run`` SIGKILLed at each task boundary of a round in turn, then run again.
Nothing is asked, answered, registered or paid twice, and nothing the killed command started is left running.

The boundaries come from the flow itself: one uninterrupted round (in this process) records its task runs in the
order they completed, so a task added to the round is covered without touching this file. Then, on a fresh copy
of the project, run k is killed by a Prefect completion hook the moment the k-th boundary's task run completes
(never a sleep), and run k + 1 starts from what that kill left; a last run completes the round. Each run is
checked after its kill: every process it had started is gone, and the store holds nothing twice.

Cost: some twenty runs. Each is forked from one "zygote" process that imported labelflow, Prefect,
scikit-learn and Great Expectations once (3-5 s of CPU per process otherwise), and all report to the session's
Prefect server. That a SIGKILLed ``labelflow run`` takes its own temporary Prefect server with it is
``tests/integrations/test_temporary_server.py``; here every process a killed run had started must be gone too.

The uninterrupted round also shows two things of its own: its flow and task runs are named after the round's
number, in the console as in the UI; and the batch validation is given only the batch, not the pool.

Run as a script, this module is the zygote.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from labelflow.integrations.datasets import digits_table
from labelflow.integrations.prefect_server import wait_for
from labelflow.integrations.store import LabelStore

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

PROJECT = "kill-test"
SEED_SIZE, GOLD, REDUNDANCY, MAX_ANSWERS = 8, 3, 2, 3
# A Prefect task walks every item of an argument of these types, looking for upstream results.
WALKED_BY_PREFECT = (list, tuple, set, frozenset, dict)


def write_project(folder: Path) -> Path:
    """A tiny digits project (120 items) whose rounds take two waves: the second asks one more answer about every
    batch item and every gold item (no label reaches confidence 1, nor does gold's as if it were not gold). Its
    store already holds another project's round, so the round's database id (2) is not its number (1)."""
    folder.mkdir(parents=True, exist_ok=True)
    digits_table(0, 120).to_csv(folder / "digits.csv", index=False)
    config = folder / "labelflow.toml"
    config.write_text(
        f"""name = "{PROJECT}"
store_url = "sqlite:///{folder / "store.db"}"
workdir = "{folder / "work"}"
[dataset]
source = "digits.csv"
id_column = "id"
n_gold = 10
[selection]
seed_size = {SEED_SIZE}
[crowd]
gold_per_round = {GOLD}
redundancy = {REDUNDANCY}
max_answers = {MAX_ANSWERS}
[quality]
confidence_target = 1.0
[training]
self_training_max_iter = 1
[budget]
max_rounds = 1
max_spend = 100.0
"""
    )
    with LabelStore(f"sqlite:///{folder / 'store.db'}", "another-project") as other:
        other.open_round()
    return config


def store_of(folder: Path) -> LabelStore:
    return LabelStore(f"sqlite:///{folder / 'store.db'}", PROJECT)


# ------------------------------------------------------------------------------------------------ the hook


def flow_tasks() -> list[Any]:
    """Every Prefect task defined in labelflow's flows (all are module-level objects)."""
    from prefect import Task

    import labelflow.flows.campaign  # noqa: F401  (imports the round and its steps)

    found: dict[int, Any] = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("labelflow.flows") and module is not None:
            found.update({id(v): v for v in vars(module).values() if isinstance(v, Task)})
    return list(found.values())


@contextmanager
def on_task_completion(hook: Callable[[Any, Any, Any], None]) -> Iterator[None]:
    """``hook(task, task_run, state)`` runs as each task run of the flows completes (a Prefect state hook)."""
    tasks = flow_tasks()
    for task in tasks:
        task.on_completion(hook)
    try:
        yield
    finally:
        for task in tasks:
            task.on_completion_hooks.remove(hook)


Boundary = tuple[str, int]  # a task run's name and which completion of that name it is (1, 2, ...)


def recorder(boundaries: list[Boundary]) -> Callable[[Any, Any, Any], None]:
    seen: Counter[str] = Counter()

    def record(task: Any, task_run: Any, state: Any) -> None:
        seen[task_run.name] += 1
        boundaries.append((task_run.name, seen[task_run.name]))

    return record


# ------------------------------------------------------------------------------------------------ the runs


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def is_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_cli(order: dict[str, Any]) -> int:
    """``labelflow ARGV`` in this process, killed by SIGKILL right after the task run ``order["kill_after"]``
    completes (after writing the pids of every process it had started to ``order["pids"]``), with every review
    decision the crowd is sent appended to ``order["decisions"]``. Returns the exit code when not killed."""
    from labelflow.flows.cli import app
    from labelflow.integrations.crowd.simulated import SimulatedCrowd

    target = tuple(order["kill_after"]) if order["kill_after"] else None
    completed: list[Boundary] = []
    record = recorder(completed)

    def kill_at_target(task: Any, task_run: Any, state: Any) -> None:
        record(task, task_run, state)
        if completed[-1] == target:
            Path(order["pids"]).write_text(json.dumps(sorted(descendants(os.getpid()))))
            os.kill(os.getpid(), signal.SIGKILL)

    review = SimulatedCrowd.review

    def record_decisions(crowd: SimulatedCrowd, decisions: Any) -> None:
        with open(order["decisions"], "a") as ledger:
            ledger.writelines(json.dumps([d.action.value, d.answer_id]) + "\n" for d in decisions)
        review(crowd, decisions)

    SimulatedCrowd.review = record_decisions  # type: ignore[method-assign]  # this process is ended after the run
    os.chdir(order["cwd"])
    with on_task_completion(kill_at_target):
        try:
            app(order["argv"], prog_name="labelflow")
        except SystemExit as exit_:
            return int(exit_.code or 0)
    return 0


def zygote() -> None:
    """Import everything once, then fork one ``labelflow`` run per order line read from stdin; answer each with
    its exit code (negative: killed by that signal) and CPU seconds once it has ended. Nothing here starts a thread
    before the forks, so each child is a clean process."""
    import labelflow.flows.campaign
    import labelflow.flows.cli  # noqa: F401
    from labelflow.tasks.validation.runtime import gx_runtime

    gx_runtime()
    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os.setsid()
            with open(order["log"], "ab") as log:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
            code = 1
            try:
                code = run_cli(order)
            except BaseException:  # into the run's log: the child must never return into this loop
                traceback.print_exc()
            finally:
                _deliver_logs_and_events()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        print(json.dumps({"returncode": returncode, "cpu": usage.ru_utime + usage.ru_stime}), flush=True)


def _deliver_logs_and_events() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10)


@dataclass
class Run:
    returncode: int
    log: Path
    started: list[int]  # the processes it had started when it was killed
    cpu: float  # seconds

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class Zygote:
    """The zygote process, started with ``env``; :meth:`run` forks one run and waits for it to end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, order: dict[str, Any]) -> tuple[int, float]:
        """The run's exit code and CPU seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(order) + "\n")
        self.process.stdin.flush()
        ended = json.loads(self.process.stdout.readline())
        return ended["returncode"], ended["cpu"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def run_labelflow(folder: Path, kill_after: Boundary | None, zygote: Zygote, *, name: str) -> Run:
    """One ``labelflow run`` of the project in ``folder``, forked by the zygote."""
    order = {
        "argv": ["run", "--config", str(folder / "labelflow.toml")],
        "cwd": str(folder),
        "kill_after": kill_after,
        "pids": str(folder / f"{name}.pids"),
        "log": str(folder / f"{name}.log"),
        "decisions": str(folder / "decisions.jsonl"),
    }
    returncode, cpu = zygote.run(order)
    pids = Path(order["pids"])
    started = json.loads(pids.read_text()) if pids.exists() else []
    return Run(returncode, Path(order["log"]), started, cpu)


def assert_nothing_left_running(run: Run) -> None:
    wait_for(
        lambda: not any(is_alive(pid) for pid in run.started),
        30,
        f"the processes {run.started} started by the killed run gone",
        every=0.2,
    )


# ------------------------------------------------------------------------------------------------ the round


@dataclass
class UninterruptedRound:
    folder: Path
    boundaries: list[Boundary]
    records: list[logging.LogRecord]
    batch_validations: list[dict[str, Any]]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UninterruptedRound]:
    """One round of the project, run here as ``labelflow run`` runs it; its task runs in the order they
    completed, its runs' log records and what its batch validation was given."""
    import labelflow.flows.labeling_round as labeling_round_module
    from labelflow.flows.campaign import labeling_campaign
    from labelflow.flows.config import load_config

    folder = tmp_path_factory.mktemp("uninterrupted")
    config = load_config(write_project(folder))
    boundaries: list[Boundary] = []
    batch_validations: list[dict[str, Any]] = []
    validate_frame = labeling_round_module.validate_frame

    def spy(frame: pd.DataFrame, suite: str, *args: Any, **kwargs: Any) -> Any:
        if suite == "batch":
            batch_validations.append({"batch": frame, **kwargs})
        return validate_frame(frame, suite, *args, **kwargs)

    records = _Records()
    loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    with pytest.MonkeyPatch.context() as patch, on_task_completion(recorder(boundaries)):
        patch.setattr(labeling_round_module, "validate_frame", spy)
        for logger in loggers:
            logger.addHandler(records)
        try:
            report = labeling_campaign(config, str(folder))
        finally:
            for logger in loggers:
                logger.removeHandler(records)
    assert report.final is not None and report.final.number == 1
    yield UninterruptedRound(folder, boundaries, records.records, batch_validations)


def test_a_round_and_its_task_runs_are_named_after_its_number_in_the_console_as_in_the_ui(
    uninterrupted: UninterruptedRound,
) -> None:
    from prefect.client.orchestration import get_client

    with store_of(uninterrupted.folder) as store:
        round_ = store.rounds().iloc[0]
    assert (round_["number"], round_["id"]) == (1, 2)  # another project's round came first
    round_lines = [r for r in uninterrupted.records if getattr(r, "flow_name", None) == "labeling-round"]
    assert round_lines and {r.flow_run_name for r in round_lines} == {f"{PROJECT}-round-1"}  # type: ignore[attr-defined]
    with get_client(sync_client=True) as client:
        shown = client.read_flow_run(round_lines[0].flow_run_id).name  # type: ignore[attr-defined]
    assert shown == f"{PROJECT}-round-1"
    names = [name for name, _ in uninterrupted.boundaries]
    assert all(re.fullmatch(r"[a-z-]+-round-1(-wave-[12])?", name) for name in names), names
    assert {"dispatch-round-1-wave-2", "aggregate-round-1-wave-2", "validate-answers-round-1-wave-2"} <= set(
        names
    )
    task_lines = {r.task_run_name for r in uninterrupted.records if hasattr(r, "task_run_name")}  # type: ignore[attr-defined]
    assert task_lines and task_lines <= set(names)  # the console names the task runs as the UI does


def test_the_batch_validation_is_given_the_batch_not_the_pool(uninterrupted: UninterruptedRound) -> None:
    """On a 2M-item pool the batch's validation took 40 s for 40 rows: Prefect walked the set of the pool's ids
    it was given, item by item, looking for upstream results. Only the batch may be walked now."""
    (validation,) = uninterrupted.batch_validations
    batch = validation.pop("batch")
    assert len(batch) == SEED_SIZE
    walked = {name: len(value) for name, value in validation.items() if isinstance(value, WALKED_BY_PREFECT)}
    assert all(size <= len(batch) for size in walked.values()), walked
    pool_ids = validation["unlabeled_pool_ids"]
    assert set(batch["item_id"]) <= set(pool_ids) and len(pool_ids) > len(batch)


def test_a_round_killed_at_each_task_boundary_and_run_again_buys_registers_and_pays_nothing_twice(
    uninterrupted: UninterruptedRound, tmp_path: Path
) -> None:
    """Runs follow one another on a project until its round completes; a resumed run may skip a boundary (a
    resumed round whose second wave's answers are all stored aggregates them with the first wave's), and then
    the boundaries left are taken up on a fresh project, so that each one is killed at once."""
    from prefect.settings import PREFECT_API_URL

    left = list(uninterrupted.boundaries)
    assert len(left) >= 18 and len(set(left)) == len(left)
    projects = 1
    folder = write_project(tmp_path / "project-1").parent
    # The runs' logs go to their log files; sent to the server as well, they would only load it.
    zygote = Zygote(
        {
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_LOGGING_TO_API_ENABLED": "false",
        }
    )
    runs, fresh, cpu = 0, False, 0.0
    try:
        while True:
            run = run_labelflow(folder, left[0] if left else None, zygote, name=f"run-{runs:02d}")
            runs, cpu = runs + 1, cpu + run.cpu
            assert_nothing_left_running(run)
            with store_of(folder) as store:
                assert_nothing_twice(store, f"after run {runs}, to be killed after {left[:1]}")
            if run.returncode == -signal.SIGKILL:
                left.pop(0)
                fresh = False
                continue
            assert run.returncode == 0, run.output()
            assert not fresh, f"a round never reached {left[0]}:\n{run.output()}"
            assert_round_completed_once(folder)
            if not left:
                break
            # The resumed round had nothing left to do at the next boundary: take it up on a fresh project.
            projects += 1
            folder = write_project(tmp_path / f"project-{projects}").parent
            fresh = True
    finally:
        zygote.close()
    print(
        f"{len(uninterrupted.boundaries)} boundaries killed in {runs} runs on {projects} projects "
        f"({cpu:.0f} s of CPU in the runs)"
    )


def assert_round_completed_once(folder: Path) -> None:
    """The project's one round is completed, with exactly what an uninterrupted round buys: a first wave of the
    batch and the gold items, a second of one more answer about each of them, each answer stored and paid
    once, one model; and every answer was approved or rejected (a decision sent again after a kill is harmless:
    a crowd treats a decided answer as done), none both."""
    with store_of(folder) as store:
        rounds = store.rounds()
        assert rounds["status"].tolist() == ["completed"]
        round_id = int(rounds["id"].iloc[0])
        requests = store.requests(round_id)
        answers = store.answers(round_id)
        first_wave = requests[requests["wave"] == 1]
        assert (len(first_wave), int(first_wave["is_gold"].sum())) == (SEED_SIZE + GOLD, GOLD)
        second_wave = requests[requests["wave"] == 2]
        assert set(second_wave["item_id"]) == set(first_wave["item_id"])
        assert int(second_wave["is_gold"].sum()) == GOLD  # gold asked again as gold, as unsure as the batch
        assert len(answers) == int(requests["n_answers"].sum()) == (SEED_SIZE + GOLD) * (REDUNDANCY + 1)
        assert store.requested_answers() == len(answers)  # what is paid for: every answer once
        assert len(store.model_versions()) == 1
        unparsed = store.answers(round_id, parsed=False)
    decisions = [json.loads(line) for line in (folder / "decisions.jsonl").read_text().splitlines()]
    approved = {answer for action, answer in decisions if action == "approve"}
    rejected = {answer for action, answer in decisions if action == "reject"}
    assert approved | rejected == {*answers["answer_id"], *unparsed["answer_id"]}  # every answer decided
    assert not approved & rejected


def assert_nothing_twice(store: LabelStore, when: str) -> None:
    """No item asked twice in a wave or beyond ``MAX_ANSWERS`` in the round, no second batch, no answer stored
    twice or beyond what was asked, at most one model and one round."""
    rounds = store.rounds()
    assert len(rounds) <= 1, f"{when}: rounds {rounds['number'].tolist()}"
    if rounds.empty:
        return
    round_id = int(rounds["id"].iloc[0])
    requests = store.requests(round_id)
    answers = store.answers(round_id)
    assert not requests.duplicated(["item_id", "wave"]).any(), when
    assert (requests.groupby("item_id")["n_answers"].sum() <= MAX_ANSWERS).all(), when
    first_wave = requests[requests["wave"] == 1]
    assert len(first_wave) in (0, SEED_SIZE + GOLD), f"{when}: a first wave of {len(first_wave)} requests"
    assert requests["external_id"].dropna().is_unique, when
    assert answers["answer_id"].is_unique, when
    asked = requests.set_index(["item_id", "wave"])["n_answers"]
    given = answers.groupby(["item_id", "wave"]).size()
    assert (given <= asked.reindex(given.index).fillna(0)).all(), f"{when}: answers beyond what was asked"
    assert len(store.model_versions()) <= 1, when


if __name__ == "__main__":
    zygote()
