"""What a worker sees and what comes back: the HIT's HTMLQuestion (a crowd-form) and its answer document."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Final

QUESTION_MAX: Final = 65535
ANSWER_FIELD: Final = (
    "label"  # the crowd-classifier's name, so its answer is taskAnswers[0]["label"]["label"]
)


def _looks_like_image(payload: str) -> bool:
    lowered = payload.lower()
    return lowered.startswith("data:image/") or (
        lowered.startswith(("http://", "https://"))
        and lowered.split("?", 1)[0].endswith((".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"))
    )


def question_xml(
    item_id: str, payload: str | None, label_names: Sequence[str], *, title: str, instructions: str
) -> str:
    """An HTMLQuestion: a crowd-html-elements ``crowd-form`` with one ``crowd-classifier`` over the labels.

    Everything that comes from data is HTML-escaped, which also keeps ``]]>`` out of the CDATA section.
    """
    shown = payload if payload is not None else f"Item {item_id}"
    target = (
        f'<img src="{html.escape(shown, quote=True)}" alt="the item" style="max-width:100%">'
        if _looks_like_image(shown)
        else f"<p>{html.escape(shown)}</p>"
    )
    categories = html.escape(json.dumps(list(label_names)), quote=True)
    text = html.escape(instructions)
    return (
        '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/'
        'HTMLQuestion.xsd"><HTMLContent><![CDATA[<!DOCTYPE html>\n'
        '<html><head><meta charset="utf-8">'
        '<script src="https://assets.crowd.aws/crowd-html-elements.js"></script></head><body>\n'
        "<crowd-form>\n"
        f'<crowd-classifier name="{ANSWER_FIELD}" categories="{categories}" '
        f'header="{html.escape(title, quote=True)}">\n'
        f"<classification-target>{target}</classification-target>\n"
        f'<full-instructions header="Instructions"><p>{text}</p></full-instructions>\n'
        f"<short-instructions><p>{text}</p></short-instructions>\n"
        "</crowd-classifier>\n</crowd-form>\n</body></html>]]></HTMLContent>"
        "<FrameHeight>0</FrameHeight></HTMLQuestion>"
    )


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_answer(raw: str, label_names: Sequence[str]) -> tuple[str | None, str | None]:
    """``(label, None)`` from a QuestionFormAnswers document holding the crowd-form's ``taskAnswers`` JSON,
    or ``(None, why)`` when it does not parse or names no known label."""
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as error:
        return None, f"answer XML does not parse: {error}"
    free_text: str | None = None
    for answer in root.iter():
        if _local_name(answer.tag) != "Answer":
            continue
        fields = {_local_name(child.tag): (child.text or "") for child in answer}
        if fields.get("QuestionIdentifier") == "taskAnswers":
            free_text = fields.get("FreeText")
    if free_text is None:
        return None, "no taskAnswers answer in the QuestionFormAnswers document"
    try:
        tasks = json.loads(free_text)
    except json.JSONDecodeError as error:
        return None, f"taskAnswers is not JSON: {error}"
    try:
        label = tasks[0][ANSWER_FIELD]["label"]
    except (TypeError, KeyError, IndexError):
        return None, f'taskAnswers has no [0]["{ANSWER_FIELD}"]["label"]: {free_text[:200]!r}'
    if not isinstance(label, str) or label not in label_names:
        return None, f"answer {label!r} is not one of the labels {list(label_names)[:20]}"
    return label, None
