"""The replay crowd: recorded answers, in the file's order, one per slot, the same in every process."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from labelflow.integrations.answers_file import AnswersFileError
from labelflow.integrations.crowd.base import CrowdAnswer, LabelRequest, Review, ReviewAction, VirtualClock
from labelflow.integrations.crowd.replay import ReplayCrowd, ReplayCrowdConfig

RECORDED = "question,worker,answer\na,w3,cat\nb,w1,dog\na,w1,dog\na,w2,cat\ng,w2,cat\ng,w3,dog\n"


def crowd(tmp_path: Path, text: str = RECORDED, **kwargs: object) -> ReplayCrowd:
    (tmp_path / "answers.csv").write_text(text, encoding="utf-8")
    return ReplayCrowd(
        ReplayCrowdConfig(answers="answers.csv"),
        ["cat", "dog"],
        reward_per_answer=0.04,
        base_dir=tmp_path,
        namespace="test",
        **kwargs,  # type: ignore[arg-type]
    )


def request(item: str, n: int, *, before: int = 0, wave: int = 1, gold: bool = False) -> LabelRequest:
    return LabelRequest(
        key=f"p/r1/{item}/w{wave}",
        item_id=item,
        round_id=1,
        wave=wave,
        n_answers=n,
        is_gold=gold,
        answers_before=before,
    )


def collect(replay: ReplayCrowd, requests: list[LabelRequest], hours: float = 48) -> list[CrowdAnswer]:
    handles = replay.publish(requests)
    replay.clock.sleep(hours * 3600)
    return replay.poll(handles)


def test_answers_arrive_over_the_virtual_clock_from_the_items_recorded_workers_in_order(
    tmp_path: Path,
) -> None:
    replay = crowd(tmp_path)
    assert replay.cost_per_answer() == 0.04
    handles = replay.publish([request("a", 2)])
    assert replay.poll(handles) == []  # published just now: nothing has arrived yet
    replay.clock.sleep(48 * 3600)
    answers = replay.poll(handles)
    assert [(a.worker_id, a.label) for a in answers] == [("w3", "cat"), ("w1", "dog")]
    assert all(a.submitted_at > handles[0].published_at and a.backend == "replay" for a in answers)
    # A later wave continues with the next recorded worker, never one who already answered.
    later = collect(replay, [request("a", 1, before=2, wave=2)])
    assert [(a.worker_id, a.label) for a in later] == [("w2", "cat")]


def test_a_rerun_in_a_new_process_gets_the_same_answers(tmp_path: Path) -> None:
    first = collect(crowd(tmp_path), [request("a", 3), request("b", 1)])
    again = crowd(tmp_path)
    second = collect(again, [request("a", 3), request("b", 1)])
    assert len(first) == 4
    assert [(a.answer_id, a.worker_id, a.label) for a in first] == [
        (a.answer_id, a.worker_id, a.label) for a in second
    ]
    first_delays = [a.submitted_at - first[0].submitted_at for a in first]
    second_delays = [a.submitted_at - second[0].submitted_at for a in second]
    assert first_delays == second_delays


def test_an_item_whose_recorded_answers_are_used_up_gets_no_more(tmp_path: Path) -> None:
    replay = crowd(tmp_path)
    requests = [request("a", 5), request("b", 1), request("a", 1, before=3, wave=2), request("nobody", 2)]
    handles = replay.publish(requests)
    assert [replay.shortfall(h) for h in handles] == [2, 0, 1, 2]
    assert [h.n_answers for h in handles] == [3, 1, 0, 0]  # published for what the file can give
    assert replay.exhausted_requests(handles) == 3
    replay.clock.sleep(48 * 3600)
    answers = replay.poll(handles)
    assert pd.Series([a.item_id for a in answers]).value_counts().to_dict() == {"a": 3, "b": 1}


def test_gold_items_are_answered_from_the_file(tmp_path: Path) -> None:
    answers = collect(crowd(tmp_path), [request("g", 2, gold=True)])
    assert [(a.worker_id, a.label, a.is_gold) for a in answers] == [("w2", "cat", True), ("w3", "dog", True)]


def test_blocked_workers_answers_are_skipped(tmp_path: Path) -> None:
    replay = crowd(tmp_path, blocked_workers={"w3"})
    assert [a.worker_id for a in collect(replay, [request("a", 3)])] == ["w1", "w2"]
    replay.review([Review(ReviewAction.BLOCK, "w1")])
    assert [a.worker_id for a in collect(replay, [request("a", 3, wave=2)])] == ["w2"]


def test_closed_requests_bring_nothing(tmp_path: Path) -> None:
    replay = crowd(tmp_path)
    handles = replay.publish([request("a", 2)])
    replay.close(handles)
    replay.clock.sleep(48 * 3600)
    assert replay.poll(handles) == []


def test_a_file_with_a_worker_answering_an_item_twice_is_refused_naming_the_lines(tmp_path: Path) -> None:
    with pytest.raises(
        AnswersFileError, match=r"line 8, field 'worker'.*'w3' already answered item 'a' on line 2"
    ):
        crowd(tmp_path, RECORDED + "a,w3,dog\n")


def test_a_file_with_a_label_the_project_does_not_have_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AnswersFileError, match="line 8, field 'answer': label 'cow'"):
        crowd(tmp_path, RECORDED + "b,w2,cow\n")


def test_the_recorded_dog_crowd_replays_every_answer_once(shared_crowd: Path) -> None:
    folder = shared_crowd / "dog"
    recorded = pd.read_csv(folder / "answers.csv", dtype=str, keep_default_na=False)
    labels = sorted(recorded["answer"].unique())
    replays = [
        ReplayCrowd(
            ReplayCrowdConfig(answers="answers.csv"),
            labels,
            reward_per_answer=0.05,
            base_dir=folder,
            clock=VirtualClock(),
        )
        for _ in range(2)
    ]
    items = sorted(recorded["question"].unique())
    # Wave 1 asks 3 answers of every item, wave 2 asks 20 more: more than any item has.
    got = []
    for replay in replays:
        answers = collect(replay, [request(item, 3) for item in items])
        answers += collect(replay, [request(item, 20, before=3, wave=2) for item in items])
        got.append(answers)
    assert [a.answer_id for a in got[0]] == [a.answer_id for a in got[1]]
    assert len(got[0]) == len(recorded) and len({a.answer_id for a in got[0]}) == len(recorded)
    replayed = pd.DataFrame([(a.item_id, a.worker_id, a.label) for a in got[0]], columns=recorded.columns)
    pd.testing.assert_frame_equal(
        replayed.sort_values(["question", "worker"]).reset_index(drop=True),
        recorded.sort_values(["question", "worker"]).reset_index(drop=True),
    )
    handles = replays[0].publish([request(item, 20, before=3, wave=2) for item in items])
    assert replays[0].exhausted_requests(handles) == len(items)


def test_answers_a_recording_lacks_are_neither_paid_nor_waited_for(tmp_path: Path) -> None:
    from labelflow.integrations.store import LabelStore
    from labelflow.tasks.answers import WaveOutcome, collect_wave
    from labelflow.tasks.dispatch import publish_wave

    store = LabelStore(f"sqlite:///{tmp_path / 'labels.db'}", "pets")
    round_id = store.open_round().id
    replay = crowd(tmp_path)
    requests = [
        replace(r, round_id=round_id, key=f"{r.key}-{round_id}")
        for r in [request("a", 5), request("b", 1), request("nobody", 2)]
    ]
    handles = publish_wave(store, replay, requests, wave=1, spent=0.0, budget=100.0).handles
    assert store.requested_answers() == 4  # 3 of a's 5 and b's 1: what the recording holds
    progress = collect_wave(store, replay, handles, poll_interval_minutes=10, deadline_hours=24)
    assert progress.outcome is not WaveOutcome.DEADLINE and progress.collected == 4
    # the wave ended when the last recorded answer came, not at the deadline
    assert replay.clock.now() - min(h.published_at for h in handles) < timedelta(hours=24)
    # a rebuilt crowd (another process) still tells which requests fell short, from the stored handles
    assert crowd(tmp_path).exhausted_requests(store.handles(round_id)) == 2
