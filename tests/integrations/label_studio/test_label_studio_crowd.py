"""LabelStudioCrowd against a real Label Studio server: publishing, waves, annotations good and bad, review and
close. Annotators answer through the API with their own tokens, as the UI would."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from conftest import LabelStudioForTests

from labelflow.integrations.crowd.base import (
    CrowdAnswer,
    CrowdBackendError,
    Handle,
    LabelRequest,
    Review,
    ReviewAction,
    TransientCrowdError,
)
from labelflow.integrations.label_studio import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioConfig,
    LabelStudioConfigError,
    LabelStudioCrowd,
    labeling_config,
)
from labelflow.integrations.label_studio.server import free_port

pytestmark = pytest.mark.slow
LABELS = ["neg", "pos"]
_titles = itertools.count()


class Published:
    """A crowd on a fresh project, remembering its handles as the label store would."""

    def __init__(self, ls: LabelStudioForTests, **options: object) -> None:
        self.handles: list[Handle] = []
        self.crowd = LabelStudioCrowd(
            LabelStudioClient(ls.url, ls.owner_token),
            LabelStudioConfig(url=ls.url),
            LABELS,
            kind="text",
            project_title=f"crowd-test-{next(_titles)}-{datetime.now(UTC):%H%M%S%f}",
            reward_per_answer=0.05,
            redundancy=2,
            round_handles=lambda round_id: [h for h in self.handles if h.round_id == round_id],
            **options,  # type: ignore[arg-type]
        )

    def publish(self, *requests: LabelRequest) -> list[Handle]:
        handles = self.crowd.publish(requests)
        self.handles.extend(h for h in handles if h.key not in {k.key for k in self.handles})
        return handles

    def task(self, handle: Handle) -> int:
        return int(handle.external_id)


def request(item: str, wave: int = 1, n: int = 2, before: int = 0) -> LabelRequest:
    return LabelRequest(
        key=f"p/1/{item}/{wave}",
        item_id=item,
        round_id=1,
        wave=wave,
        n_answers=n,
        payload=f"the text of {item}",
        answers_before=before,
    )


def user_id(ls: LabelStudioForTests, email: str) -> int:
    with ls.as_user(ls.annotators[email]) as client:
        return int(client.request("GET", "/api/current-user/whoami", "whoami")["id"])


def next_task(ls: LabelStudioForTests, email: str, project_id: int) -> int | None:
    """The task Label Studio's queue offers the annotator next (None: nothing left for them)."""
    with ls.as_user(ls.annotators[email]) as client:
        try:
            task = client.request("GET", f"/api/projects/{project_id}/next", "next task")
        except CrowdBackendError:
            return None
    return int(task["id"]) if task and "id" in task else None


def by_worker(answers: list[CrowdAnswer]) -> dict[str, CrowdAnswer]:
    return {a.worker_id: a for a in answers}


ANN, BOB, CAT = "ann@labelflow.test", "bob@labelflow.test", "cat@labelflow.test"


def test_publishing_twice_imports_once_and_a_later_wave_goes_only_to_someone_new(
    label_studio: LabelStudioForTests,
) -> None:
    ls, crowd = label_studio, Published(label_studio)
    first = crowd.publish(request("a"), request("b"))
    again = crowd.publish(request("a"), request("b"))  # a rerun after a crash
    assert [h.external_id for h in again] == [h.external_id for h in first]
    assert len(crowd.crowd.tasks()) == 2
    project = crowd.crowd.project_id
    for email, label in ((ANN, "pos"), (BOB, "neg")):
        for handle in first:
            ls.annotate(ls.annotators[email], crowd.task(handle), [label])
    answers = by_worker(crowd.crowd.poll(first[:1]))
    assert {w: a.label for w, a in answers.items()} == {
        f"ls:{user_id(ls, ANN)}": "pos",
        f"ls:{user_id(ls, BOB)}": "neg",
    }
    assert all(a.answer_id.startswith("ls-") and a.backend == "label_studio" for a in answers.values())

    # Wave 2 asks one more answer on item a: the same task, its overlap raised, offered to cat only.
    assert next_task(ls, CAT, project) is None  # both tasks are full
    [second] = crowd.publish(request("a", wave=2, n=1, before=2))
    assert second.external_id == first[0].external_id
    crowd.publish(request("a", wave=2, n=1, before=2))  # idempotent: the overlap is set, not added to
    assert next_task(ls, ANN, project) is None and next_task(ls, BOB, project) is None
    assert next_task(ls, CAT, project) == crowd.task(second)
    ls.annotate(ls.annotators[CAT], crowd.task(second), ["pos"])
    [third] = crowd.crowd.poll([second])
    assert third.worker_id == f"ls:{user_id(ls, CAT)}" and third.wave == 2 and third.label == "pos"
    assert len(crowd.crowd.poll(first)) == 4  # wave 1 keeps its own two answers per item
    assert len(crowd.crowd.tasks()) == 2


def test_bad_skipped_repeated_and_edited_annotations(label_studio: LabelStudioForTests) -> None:
    ls, crowd = label_studio, Published(label_studio)
    [handle] = crowd.publish(request("a", n=3))
    task = crowd.task(handle)
    ls.annotate(ls.annotators[CAT], task, [], was_cancelled=True)  # skipped: no answer, no slot
    outside = ls.annotate(ls.annotators[ANN], task, ["meh"])
    ls.annotate(ls.annotators[ANN], task, ["pos"])  # ann again: kept, rejected
    nothing = ls.annotate(ls.annotators[BOB], task, [])
    answers = {a.answer_id: a for a in crowd.crowd.poll([handle])}
    assert answers[f"ls-{outside['id']}"].parse_error == (
        "label 'meh' is not one of the project's labels ['neg', 'pos']"
    )
    assert answers[f"ls-{nothing['id']}"].parse_error == "the annotation has no choice"
    [repeat] = [a for a in answers.values() if a.answer_id.endswith(":repeat")]
    assert repeat.label is None and "a second annotation by" in (repeat.parse_error or "")
    assert all(a.label is None for a in answers.values()) and len(answers) == 3
    assert all(a.raw.startswith("[") for a in answers.values())  # the result, verbatim

    # Bob fixes his annotation: the edit is a new answer, with the label.
    with ls.as_user(ls.annotators[BOB]) as client:
        client.request(
            "PATCH",
            f"/api/annotations/{nothing['id']}/",
            "editing",
            json={
                "result": [
                    {
                        "from_name": "label",
                        "to_name": "text",
                        "type": "choices",
                        "value": {"choices": ["neg"]},
                    }
                ]
            },
        )
    edited = [a for a in crowd.crowd.poll([handle]) if a.answer_id.startswith(f"ls-{nothing['id']}@")]
    assert [a.label for a in edited] == ["neg"]


def test_close_deletes_unanswered_tasks_and_block_removes_the_annotator(
    label_studio: LabelStudioForTests,
) -> None:
    ls, crowd = label_studio, Published(label_studio)
    answered, unanswered = crowd.publish(request("a"), request("b"))
    ls.annotate(ls.annotators[CAT], crowd.task(answered), ["pos"])
    crowd.crowd.close([answered, unanswered])
    tasks = crowd.crowd.tasks()
    assert list(tasks) == ["1/a"] and tasks["1/a"]["overlap"] == 1  # kept with its answer, out of the queue
    assert len(crowd.crowd.poll([answered])) == 1  # answers of a closed task stay readable

    # A fresh annotator, so that blocking leaves the session's others alone.
    team, email = ls.with_new_annotator("dan")
    dan = team.annotators
    ls.annotate(dan[email], crowd.task(answered), ["neg"])
    dan_id = f"ls:{user_id(team, email)}"
    assert dan_id in by_worker(crowd.crowd.poll([answered]))
    crowd.crowd.review([Review(ReviewAction.BLOCK, dan_id, reason="spammer")])
    assert next_task(team, email, crowd.crowd.project_id) is None  # removed from the organization
    # What Dan gave before stays his answer; a crowd built later (from the store's blocked workers) rejects it.
    later = Published(ls, blocked_workers=[dan_id])
    later.crowd._project_id = crowd.crowd.project_id
    rejected = by_worker(later.crowd.poll([answered]))[dan_id]
    assert rejected.label is None and rejected.parse_error == f"annotator {dan_id} is blocked"


def test_a_task_deleted_in_the_ui_loses_no_stored_answer(
    label_studio: LabelStudioForTests, caplog: pytest.LogCaptureFixture
) -> None:
    ls, crowd = label_studio, Published(label_studio)
    kept, deleted = crowd.publish(request("a"), request("b"))
    ls.annotate(ls.annotators[ANN], crowd.task(kept), ["pos"])
    with ls.as_user(ls.owner_token) as owner:
        owner.request("DELETE", f"/api/tasks/{crowd.task(deleted)}/", "deleting")
    with caplog.at_level(logging.WARNING):
        answers = crowd.crowd.poll([kept, deleted])
    assert [a.item_id for a in answers] == ["a"]
    assert f"task {crowd.task(deleted)} of item 'b' (round 1) is gone" in caplog.text
    with pytest.raises(CrowdBackendError, match=r"later-wave requests for \['1/b'\].*deleted in the UI"):
        crowd.publish(request("b", wave=2, n=1, before=0))


def test_a_hand_edited_labeling_config_is_refused_with_the_config_to_restore(
    label_studio: LabelStudioForTests,
) -> None:
    ls, crowd = label_studio, Published(label_studio)
    crowd.publish(request("a"))
    with ls.as_user(ls.owner_token) as owner:
        owner.request(
            "PATCH",
            f"/api/projects/{crowd.crowd.project_id}/",
            "editing the config",
            json={"label_config": labeling_config(["neg", "pos", "neutral"], "text")},
        )
    again = LabelStudioCrowd(
        LabelStudioClient(ls.url, ls.owner_token),
        LabelStudioConfig(url=ls.url),
        LABELS,
        kind="text",
        project_title=crowd.crowd.project_title,
        reward_per_answer=0.05,
        redundancy=2,
        round_handles=lambda _: [],
    )
    with pytest.raises(
        LabelStudioConfigError, match=r"its choices are \['neg', 'pos', 'neutral'\].*Restore it"
    ):
        again.publish([request("b")])


@pytest.mark.parametrize(
    ("make_client", "error", "message"),
    [
        (lambda url, token: LabelStudioClient(url, "0" * 40), LabelStudioAuthError, "refused the token"),
        (
            lambda url, token: LabelStudioClient(url, "a.b.c"),
            LabelStudioAuthError,
            "refused the access token",
        ),
        (
            lambda url, token: LabelStudioClient(f"http://127.0.0.1:{free_port()}", token),
            TransientCrowdError,
            r"is unreachable while .*is it running\?",
        ),
    ],
    ids=["wrong-legacy-token", "wrong-access-token", "unreachable"],
)
def test_a_wrong_token_or_an_unreachable_server_is_a_clear_error(
    label_studio: LabelStudioForTests,
    make_client: Callable[[str, str], LabelStudioClient],
    error: type[Exception],
    message: str,
) -> None:
    crowd = LabelStudioCrowd(
        make_client(label_studio.url, label_studio.owner_token),
        LabelStudioConfig(url=label_studio.url),
        LABELS,
        kind="text",
        project_title="never-created",
        reward_per_answer=0.05,
        redundancy=2,
        round_handles=lambda _: [],
    )
    with pytest.raises(error, match=message):
        crowd.publish([request("a")])


def test_the_token_never_comes_from_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from labelflow.integrations.label_studio import access_token

    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(LabelStudioConfigError, match="set LABEL_STUDIO_API_KEY"):
        access_token(LabelStudioConfig())
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret")
    assert access_token(LabelStudioConfig()) == "secret"
    with pytest.raises(ValueError, match="extra"):
        LabelStudioConfig(token="secret")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kind", "tag"),
    [
        ("text", '<Text name="text" value="$text"/>'),
        ("image", '<Image name="image" value="$image"/>'),
        ("table", '<Table name="row" value="$row"/>'),
    ],
)
def test_the_labeling_config_follows_the_kind_of_items_and_quotes_labels(kind: str, tag: str) -> None:
    from labelflow.integrations.label_studio import check_labeling_config

    xml = labeling_config(['say "yes"', "no & never"], kind, instructions="Pick one")  # type: ignore[arg-type]
    assert tag in xml and "<Choice value='say \"yes\"'/>" in xml and "no &amp; never" in xml
    check_labeling_config(xml, ['say "yes"', "no & never"], kind, "here")  # type: ignore[arg-type]
    with pytest.raises(LabelStudioConfigError, match="here: the labeling config is not valid XML"):
        check_labeling_config("<View>", ["a"], kind, "here")  # type: ignore[arg-type]
