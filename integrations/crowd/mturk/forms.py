"""What a worker sees and what comes back: the HIT's page (an HTMLQuestion) and its answer document.

The page is plain HTML: the item (text, an image, or a table row as a small table), the ``[task]`` section's
title, one-line instruction and folded Markdown instructions, and one radio button per label with its
description and example. It needs no script from anywhere else, so it works offline as on MTurk. It follows
MTurk's HTMLQuestion contract: MTurk opens it with ``assignmentId``, ``hitId``, ``workerId`` and
``turkSubmitTo`` in the URL, and the form posts the chosen label (field ``label``) and the ``assignmentId`` to
``<turkSubmitTo>/mturk/externalSubmit``. In preview (``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE``, before the
worker accepts) the choices can be looked at but not submitted. MTurk stores the answer as a QuestionFormAnswers
document with one ``Answer`` per form field; :func:`parse_answer` reads the label from it.

Everything that comes from data or config is HTML-escaped, which also keeps ``]]>`` out of the CDATA section.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Final, Literal

from markdown_it import MarkdownIt

from labelflow.integrations.crowd.task import TaskConfig

QUESTION_MAX: Final = 65535  # bytes of the whole HTMLQuestion XML, whitespace included (CreateHIT's limit)
ANSWER_FIELD: Final = "label"  # the radio buttons' name, so the answer is the Answer with this identifier
PREVIEW_ASSIGNMENT: Final = "ASSIGNMENT_ID_NOT_AVAILABLE"
SUBMIT_PATH: Final = "/mturk/externalSubmit"
DEFAULT_SUBMIT_TO: Final = "https://www.mturk.com"
QFA_NAMESPACE: Final = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
)
HTML_QUESTION_NAMESPACE: Final = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
)
ItemKind = Literal["text", "image", "table"]
IMAGE_EXTENSIONS: Final = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp")

_MARKDOWN = MarkdownIt("commonmark", {"html": False})  # raw HTML in the instructions is shown as text

_STYLE = """
body{font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0;background:#fff}
main{max-width:760px;margin:0 auto;padding:20px}
h1{font-size:1.35em;margin:0 0 4px}
.instruction{margin:0 0 12px;color:#424a53}
details{margin:0 0 14px;border:1px solid #d0d7de;border-radius:6px;padding:6px 12px}
summary{cursor:pointer;color:#0969da}
.item{border:1px solid #d0d7de;border-radius:8px;padding:14px 16px;margin:0 0 16px;background:#f6f8fa}
.item p{margin:0;white-space:pre-wrap;font-size:1.1em}
.item img{display:block;max-width:100%;max-height:480px;margin:0 auto}
.item table{border-collapse:collapse}
.item th,.item td{border:1px solid #d0d7de;padding:3px 10px;text-align:left}
.item th{font-weight:600;background:#fff}
fieldset{border:0;margin:0 0 14px;padding:0}
legend{font-weight:600;margin-bottom:6px}
.choice{display:flex;gap:10px;align-items:flex-start;border:1px solid #d0d7de;border-radius:6px;
 padding:8px 12px;margin:0 0 6px;cursor:pointer}
.choice:hover{border-color:#0969da}
.choice input{margin-top:4px}
.choice .name{font-weight:600}
.choice .key{color:#6e7781;font-size:.85em;margin-left:6px}
.choice .description{display:block;color:#424a53}
.choice .example{display:block;color:#6e7781;font-style:italic}
button{font-size:1em;padding:8px 22px;border-radius:6px;border:1px solid #1f883d;background:#1f883d;color:#fff}
button:disabled{background:#8c959f;border-color:#8c959f}
.preview{color:#9a6700;margin-left:10px}
"""

# Reads MTurk's URL parameters: where to post, which assignment; keeps submit off in preview and until a choice.
_SCRIPT = f"""
(function () {{
  var params = new URLSearchParams(window.location.search);
  var assignment = params.get("assignmentId") || "{PREVIEW_ASSIGNMENT}";
  var form = document.getElementById("hit");
  var button = document.getElementById("submit");
  var preview = assignment === "{PREVIEW_ASSIGNMENT}";
  form.elements.assignmentId.value = assignment;
  var submitTo = params.get("turkSubmitTo");
  if (submitTo) form.action = submitTo.replace(/\\/+$/, "") + "{SUBMIT_PATH}";
  document.getElementById("preview-note").hidden = !preview;
  function update() {{ button.disabled = preview || !form.querySelector("input[name={ANSWER_FIELD}]:checked"); }}
  form.addEventListener("change", update);
  form.addEventListener("submit", function (event) {{ if (button.disabled) event.preventDefault(); }});
  document.addEventListener("keydown", function (event) {{
    var choice = document.querySelector("input[name={ANSWER_FIELD}][data-key='" + event.key + "']");
    if (choice && !event.ctrlKey && !event.metaKey && !event.altKey) {{ choice.checked = true; update(); }}
  }});
  update();
}})();
"""


def looks_like_image(payload: str) -> bool:
    """An image URL or data URI (a table or text dataset may still point at pictures)."""
    lowered = payload.lower()
    return lowered.startswith("data:image/") or (
        lowered.startswith(("http://", "https://")) and lowered.split("?", 1)[0].endswith(IMAGE_EXTENSIONS)
    )


def item_html(item_id: str, payload: str | None, kind: ItemKind, *, image_src: str | None = None) -> str:
    """The item as workers see it: ``image_src`` for an image (already made fit for the page), the text, or
    for a table a JSON object's fields as a two-column table."""
    if image_src is None and kind == "image" and payload is not None:
        image_src = payload
    if image_src is not None:
        return f'<img src="{html.escape(image_src, quote=True)}" alt="The item to label">'
    shown = payload if payload is not None else f"Item {item_id}"
    if kind == "table":
        try:
            row = json.loads(shown)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            cells = "".join(
                f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(_cell(value))}</td></tr>"
                for name, value in row.items()
            )
            return f"<table>{cells}</table>"
    return f"<p>{html.escape(shown)}</p>"


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def hit_page(item: str, task: TaskConfig, label_names: Sequence[str]) -> str:
    """The whole HIT page around ``item`` (from :func:`item_html`): title, instruction, folded instructions,
    one radio button per label, and the externalSubmit form."""
    choices = []
    for number, label in enumerate(label_names, start=1):
        shown = task.display(label)
        key = str(number) if number <= 9 else ""
        details = "".join(
            f'<span class="{css}">{prefix}{html.escape(text)}</span>'
            for css, prefix, text in (
                ("description", "", shown.description),
                ("example", "Example: ", shown.example),
            )
            if text
        )
        choices.append(
            f'<label class="choice"><input type="radio" name="{ANSWER_FIELD}" '
            f'value="{html.escape(label, quote=True)}" data-key="{key}" required>'
            f'<span><span class="name">{html.escape(shown.display or label)}</span>'
            + (f'<span class="key">[{key}]</span>' if key else "")
            + f"{details}</span></label>"
        )
    instructions = (
        f"<details><summary>Full instructions</summary>{_MARKDOWN.render(task.instructions)}</details>"
        if task.instructions.strip()
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(task.title)}</title><style>{_STYLE}</style></head><body><main>\n"
        f"<h1>{html.escape(task.title)}</h1>\n"
        f'<p class="instruction">{html.escape(task.instruction)}</p>\n{instructions}\n'
        f'<form id="hit" method="post" action="{DEFAULT_SUBMIT_TO}{SUBMIT_PATH}">\n'
        '<input type="hidden" name="assignmentId" value="">\n'
        f'<div class="item">{item}</div>\n'
        f"<fieldset><legend>Your answer</legend>{''.join(choices)}</fieldset>\n"
        '<button id="submit" type="submit" disabled>Submit</button>'
        '<span id="preview-note" class="preview" hidden>Accept the HIT to submit an answer.</span>\n'
        f"</form></main><script>{_SCRIPT}</script></body></html>"
    )


def question_xml(page: str) -> str:
    """``page`` as an HTMLQuestion (MTurk sizes the frame to the page: FrameHeight 0)."""
    if "]]>" in page:
        raise ValueError("a HIT page must not contain ']]>' (it would end the CDATA section)")
    return (
        f'<HTMLQuestion xmlns="{HTML_QUESTION_NAMESPACE}"><HTMLContent><![CDATA[{page}]]></HTMLContent>'
        "<FrameHeight>0</FrameHeight></HTMLQuestion>"
    )


def question_size(question: str) -> int:
    """The question's size as MTurk counts it: bytes of UTF-8."""
    return len(question.encode("utf-8"))


def page_of_question(question: str) -> str:
    """The HTML page inside an HTMLQuestion (what MTurk serves to the worker's frame)."""
    root = ET.fromstring(question)
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "HTMLContent":
            return element.text or ""
    raise ValueError("not an HTMLQuestion: no HTMLContent")


def form_answers(fields: Mapping[str, str]) -> str:
    """The QuestionFormAnswers document MTurk stores for a submitted form: one Answer per field but the
    assignmentId."""
    answers = "".join(
        f"<Answer><QuestionIdentifier>{html.escape(name, quote=False)}</QuestionIdentifier>"
        f"<FreeText>{html.escape(value, quote=False)}</FreeText></Answer>"
        for name, value in fields.items()
        if name != "assignmentId"
    )
    return (
        (
            f'<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="{QFA_NAMESPACE}">'
            f"{answers}</QuestionFormAnswers>"
        )
        .encode("ascii", "xmlcharrefreplace")
        .decode("ascii")
    )


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_answer(raw: str, label_names: Sequence[str]) -> tuple[str | None, str | None]:
    """``(label, None)`` from a QuestionFormAnswers document, or ``(None, why)`` when it does not parse or names
    no known label.

    The label is the ``label`` field of the form; a HIT posted by an earlier version (a crowd-form, whose answer
    is the ``taskAnswers`` JSON) is read too, so answers to HITs still open across an upgrade are not lost.
    """
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as error:
        return None, f"answer XML does not parse: {error}"
    fields: dict[str, str] = {}
    for answer in root.iter():
        if _local_name(answer.tag) == "Answer":
            parts = {_local_name(child.tag): (child.text or "") for child in answer}
            fields[parts.get("QuestionIdentifier", "")] = parts.get("FreeText", "")
    if ANSWER_FIELD in fields:
        label: object = fields[ANSWER_FIELD]
    elif "taskAnswers" in fields:
        try:
            label = json.loads(fields["taskAnswers"])[0][ANSWER_FIELD]["label"]
        except (json.JSONDecodeError, TypeError, KeyError, IndexError):
            return None, f"taskAnswers has no label: {fields['taskAnswers'][:200]!r}"
    else:
        return None, f'no "{ANSWER_FIELD}" answer in the QuestionFormAnswers document'
    if not isinstance(label, str) or label not in label_names:
        return None, f"answer {label!r} is not one of the labels {list(label_names)[:20]}"
    return label, None
