"""The ``[crowd.label_studio]`` section, the access token (never from the config file), and the labeling config
labelflow generates from the project's labels and data kind."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final, Literal
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

from pydantic import BaseModel, ConfigDict, Field, model_validator

TOKEN_VARIABLE: Final = "LABEL_STUDIO_API_KEY"
WEBHOOK_SECRET_VARIABLE: Final = "LABELFLOW_WEBHOOK_SECRET"
DEFAULT_WEBHOOK_PORT: Final = 8765
CHOICES_NAME: Final = "label"  # the <Choices> tag whose answer is the label
ItemKind = Literal["text", "image", "table"]
# The task data field each kind of item is shown from, and the tag that shows it.
DATA_FIELD: Final[dict[str, str]] = {"text": "text", "image": "image", "table": "row"}
_TAG: Final[dict[str, str]] = {"text": "Text", "image": "Image", "table": "Table"}


class LabelStudioConfigError(ValueError):
    """The Label Studio settings cannot work: no token, or a project whose labeling config does not fit."""


class LabelStudioConfig(BaseModel):
    """Where the Label Studio server is, how to authenticate, and what an annotator's answer costs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        "http://127.0.0.1:8080",
        description="The Label Studio server (`labelflow label-studio start` prints it for a local one).",
    )
    token_secret: str | None = Field(
        None,
        description="The name of a Prefect Secret block holding the access token; without it, the token comes "
        "from the LABEL_STUDIO_API_KEY environment variable. Never put the token itself in this file.",
    )
    project_title: str | None = Field(
        None, description="The Label Studio project's title (by default the labelflow project's name)."
    )
    instructions: str = Field("", description="Shown to annotators above each item (plain text).")
    hourly_cost: float | None = Field(
        None,
        ge=0,
        description="What an annotator's hour costs, in dollars; with seconds_per_answer it sets the cost of an "
        "answer. Without it an answer costs crowd.reward_per_answer.",
    )
    seconds_per_answer: float = Field(
        20.0, gt=0, description="How long an answer takes on average (with hourly_cost)."
    )
    webhook_url: str | None = Field(
        None,
        description="Where Label Studio reaches labelflow's webhook receiver (`labelflow webhooks`, also run by "
        "`labelflow serve`), e.g. http://127.0.0.1:8765/label-studio: publishing registers the webhook on the "
        "project, and a served round resumes as soon as its answers are in. Without it, served rounds collect on "
        "the collector's interval.",
    )
    webhook_host: str = Field(
        "127.0.0.1",
        description="The address the webhook receiver listens on (0.0.0.0: every interface, for a Label Studio "
        "on another machine); its port is webhook_url's.",
    )
    webhook_secret: str | None = Field(
        None,
        description="The name of a Prefect Secret block holding the webhooks' shared secret; without it, the "
        "secret comes from the LABELFLOW_WEBHOOK_SECRET environment variable. Never put the secret itself here.",
    )
    page_size: int = Field(100, ge=1, le=1000, description="Tasks per page when listing a project's tasks.")
    timeout_seconds: float = Field(30.0, gt=0, description="How long one HTTP call may take.")

    @model_validator(mode="after")
    def _urls_are_http(self) -> LabelStudioConfig:
        for field, url in (("url", self.url), ("webhook_url", self.webhook_url)):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"crowd.label_studio.{field} must start with http:// or https://, not {url!r}"
                )
        return self

    @property
    def webhook_port(self) -> int:
        """The port the receiver listens on: webhook_url's (8765 when it names none)."""
        from urllib.parse import urlsplit

        return urlsplit(self.webhook_url or "").port or DEFAULT_WEBHOOK_PORT

    def cost_per_answer(self, reward_per_answer: float) -> float:
        """The internal cost of one answer: the hourly cost pro rata, or the crowd's reward per answer."""
        if self.hourly_cost is None:
            return reward_per_answer
        return self.hourly_cost * self.seconds_per_answer / 3600


def _secret(block: str | None, variable: str, field: str, missing: str) -> str:
    """A secret from the Prefect Secret block named ``block``, or else from the environment variable
    ``variable``; ``field`` names the config field, ``missing`` says how to get the secret."""
    if block:
        from prefect.blocks.system import Secret

        try:
            secret = Secret.load(block)
        except ValueError as error:
            raise LabelStudioConfigError(
                f"crowd.label_studio.{field} names the Prefect Secret block {block!r}, which cannot be loaded "
                f"({error}); create it in the Prefect UI (Blocks > Secret) or with Secret(value=...).save({block!r})"
            ) from None
        return str(secret.get())
    value = os.environ.get(variable, "").strip()
    if not value:
        raise LabelStudioConfigError(
            f"{missing}: set {variable}, or name a Prefect Secret block in crowd.label_studio.{field}"
        )
    return value


def access_token(config: LabelStudioConfig) -> str:
    """The token from the Prefect Secret block ``config.token_secret``, or else LABEL_STUDIO_API_KEY."""
    return _secret(
        config.token_secret,
        TOKEN_VARIABLE,
        "token_secret",
        "no Label Studio token (Label Studio: Account & Settings > Personal Access Token; `labelflow "
        "label-studio start` prints one)",
    )


def webhook_secret(config: LabelStudioConfig) -> str:
    """The webhooks' shared secret, from the Prefect Secret block ``config.webhook_secret`` or else
    LABELFLOW_WEBHOOK_SECRET: Label Studio sends it in a header, the receiver refuses calls without it."""
    return _secret(
        config.webhook_secret,
        WEBHOOK_SECRET_VARIABLE,
        "webhook_secret",
        "no webhook secret for the Label Studio webhooks (any long random string, e.g. from "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`; the receiver and publishing must use "
        "the same one)",
    )


def labeling_config(label_names: Sequence[str], kind: ItemKind, instructions: str = "") -> str:
    """The Label Studio labeling config for single-choice labels over ``kind`` items (text, an image, or a table
    row shown as a small key/value table)."""
    field, tag = DATA_FIELD[kind], _TAG[kind]
    choices = "\n".join(f"    <Choice value={quoteattr(str(name))}/>" for name in label_names)
    header = f"  <Header value={quoteattr(instructions)}/>\n" if instructions else ""
    return (
        "<View>\n"
        f"{header}"
        f'  <{tag} name="{field}" value="${field}"/>\n'
        f'  <Choices name="{CHOICES_NAME}" toName="{field}" choice="single" showInline="true" required="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def choice_prediction(label: str, score: float, kind: ItemKind, model_version: str) -> dict[str, object]:
    """A Label Studio prediction choosing ``label`` with ``score``: shown pre-filled to whoever opens the task."""
    return {
        "model_version": model_version,
        "score": float(score),
        "result": [
            {
                "from_name": CHOICES_NAME,
                "to_name": DATA_FIELD[kind],
                "type": "choices",
                "value": {"choices": [str(label)]},
            }
        ],
    }


def check_labeling_config(config_xml: str, label_names: Sequence[str], kind: ItemKind, where: str) -> None:
    """Raise :class:`LabelStudioConfigError` if a project's labeling config (edited by hand, say) no longer asks
    for one of exactly ``label_names`` about the ``kind`` field; styling and extra text are fine."""
    try:
        root = ElementTree.fromstring(config_xml)
    except ElementTree.ParseError as error:
        raise LabelStudioConfigError(f"{where}: the labeling config is not valid XML ({error})") from None
    field = DATA_FIELD[kind]
    choices = [c for c in root.iter("Choices") if c.get("name") == CHOICES_NAME]
    expected = labeling_config(label_names, kind)
    if len(choices) != 1:
        raise LabelStudioConfigError(
            f"{where}: the labeling config has {len(choices)} <Choices name={CHOICES_NAME!r}> tags, labelflow "
            f"needs exactly one; was it edited by hand? Restore it (Settings > Labeling Interface > Code) to:\n"
            f"{expected}"
        )
    found = [c.get("value") for c in choices[0].iter("Choice")]
    problems = []
    if sorted(map(str, found)) != sorted(map(str, label_names)):
        problems.append(f"its choices are {found}, the project's labels are {list(label_names)}")
    if choices[0].get("toName") != field:
        problems.append(f"its choices label {choices[0].get('toName')!r}, not the {field!r} field")
    if choices[0].get("choice", "single") != "single":
        problems.append("it allows several choices, labelflow takes one")
    if problems:
        raise LabelStudioConfigError(
            f"{where}: the labeling config does not fit the project: {'; '.join(problems)}. Was it edited by "
            f"hand? Restore it (Settings > Labeling Interface > Code) to:\n{expected}"
        )
