"""The project config: frozen pydantic models loaded from ``labelflow.toml`` — the flows' parameters.

Each stage owns its section's model (``SelectionConfig`` lives beside selection, and so on); this module composes
them, loads the file, and turns a wrong value into an error that names the field and what is allowed.
``CrowdConfig`` lives here: it combines the crowd backends' own configs, which the dispatch logic in
``labelflow.tasks.dispatch`` does not need.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labelflow.integrations.crowd.mturk import MTurkConfig, check_redundancy
from labelflow.integrations.crowd.replay import ReplayCrowdConfig
from labelflow.integrations.crowd.simulated import SimulatedCrowdConfig
from labelflow.integrations.crowd.task import TaskConfig
from labelflow.integrations.datasets import DIGITS, DatasetConfig
from labelflow.integrations.inbox import InboxConfig
from labelflow.integrations.label_studio.config import LabelStudioConfig
from labelflow.tasks.features.config import FeaturesConfig
from labelflow.tasks.features.plugin import load_callable
from labelflow.tasks.selection import SelectionConfig
from labelflow.tasks.training import BUILT_IN_MODELS, TrainingConfig
from labelflow.tasks.weak_supervision import WeakSupervisionConfig

CONFIG_FILE = "labelflow.toml"


class ConfigError(ValueError):
    """The config file is missing, malformed or has a wrong value; the message says which and how to fix it."""


class CrowdConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["simulated", "mturk", "replay", "label_studio"] = Field(
        "simulated",
        description="Which crowd answers: the simulated one, Mechanical Turk ([crowd.mturk]), recorded answers "
        "replayed ([crowd.replay]) or your own annotators in Label Studio ([crowd.label_studio]).",
    )
    # Adaptive redundancy (k0 = 2, k_max = 7, with quality.confidence_target tau = 0.875), chosen on the simulated
    # crowd by benchmarks/aggregation.py (section 4): the cheapest policy there that matches fixed k = 5's label
    # accuracy, at 60% of its answers (59.6%). It also beats the former default (k_max = 5, tau = 0.95) on both
    # counts: fewer answers and more correct labels, because the few items still unsure after five answers are
    # the ones a sixth and seventh answer fix. Not chosen from the demo's figures.
    redundancy: int = Field(
        2, ge=1, description="Answers per item in the first wave. (k0 of adaptive redundancy)"
    )
    max_answers: int = Field(
        7, ge=1, description="Most answers one item may get in a round through adaptive waves (k_max)."
    )
    reward_per_answer: float = Field(0.05, ge=0, description="What one answer costs, in dollars.")
    gold_per_round: int = Field(10, ge=0, description="Gold questions mixed into each round's first wave.")
    poll_interval_minutes: float = Field(
        10.0, gt=0, description="How often to ask the crowd for new answers."
    )
    wave_deadline_hours: float = Field(24.0, gt=0, description="A wave stops waiting after this long.")
    hand_off_after_seconds: float = Field(
        60.0,
        ge=0,
        description="A served round polls a new wave in its own process for this long (backing off from 1 s) "
        "before it hands the wait over to the collector deployment: a crowd that answers within it needs no "
        "hand-off at all.",
    )
    simulated: SimulatedCrowdConfig = Field(default_factory=SimulatedCrowdConfig)
    mturk: MTurkConfig = Field(default_factory=MTurkConfig)
    replay: ReplayCrowdConfig | None = Field(
        None, description='The recorded answers the replay crowd gives back (needed with backend = "replay").'
    )
    label_studio: LabelStudioConfig = Field(default_factory=LabelStudioConfig)
    expert_backend: Literal["label_studio"] | None = Field(
        None,
        description="Who answers the items the crowd disagrees on most and the labels sent for review: your "
        "experts in Label Studio, in a project of their own on the [crowd.label_studio] server (an expert answer "
        "costs its hourly_cost x seconds_per_answer). Unset: the crowd alone.",
    )
    # 10% of a round's spend for experts: on digits' development seeds (benchmarks/escalation.py --develop) the
    # best of 2.5/5/10/20/30% at every expert price tried (5, 10 and 20 crowd answers), +0.012 label accuracy
    # on average against the crowd alone at the same spend. Not chosen from the reported seeds (digits 100-109:
    # +.022 / +.012 / +.006; the real sentences: +.012 / +.002 / -.005 at 5 / 10 / 20 crowd answers).
    escalate_share: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="With expert_backend: the share of a round's spend that goes to experts. After the crowd's "
        "last wave, the round's items whose calibrated confidence is still under quality.confidence_target go "
        "to an expert, the least sure first, as many as that share buys; the round waits for their answers as "
        "for a wave. 0: no escalation. It paid while an expert answer cost up to ~10 crowd answers "
        "(benchmarks/escalation.py); lower it when experts cost more.",
    )
    review_per_round: int = Field(
        20,
        ge=0,
        description="With expert_backend: at the end of a round, at most this many crowd labels that label-issue "
        "detection flags, or still under quality.confidence_target, go to the experts' review queue with the "
        "current label pre-filled; their decisions are collected whenever they come. 0: no review.",
    )

    @model_validator(mode="after")
    def _max_at_least_redundancy(self) -> CrowdConfig:
        if self.max_answers < self.redundancy:
            raise ValueError(
                f"max_answers ({self.max_answers}) must be at least redundancy ({self.redundancy})"
            )
        if self.backend == "mturk":
            check_redundancy(self.redundancy, self.max_answers)
        if self.backend == "replay" and self.replay is None:
            raise ValueError('backend = "replay" needs a [crowd.replay] section naming its answers file')
        return self


class QualityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal[
        "majority_vote", "wawa", "dawid_skene", "one_coin_dawid_skene", "full_dawid_skene", "glad", "auto"
    ] = Field(
        "dawid_skene",
        description="How redundant answers become one label; auto: at each aggregation, the crowd model that "
        "best predicts held-out answers and gold (the round report says which and why).",
    )
    confidence_target: float = Field(
        0.875,
        gt=0,
        le=1,
        description="Labels below this confidence get another answer (up to crowd.max_answers).",
    )
    block_spammers: bool = Field(
        True, description="Block workers whose answers are, with 95% confidence, barely better than chance."
    )
    bonus_per_answer: float = Field(
        0.0,
        ge=0,
        description="Bonus in dollars per answer of the round for the top workers (0: no bonuses; bonuses are "
        "paid outside budget.max_spend).",
    )
    bonus_top_share: float = Field(
        0.1, ge=0, le=1, description="Share of active workers (by agreement) who get the bonus."
    )


class BudgetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_spend: float = Field(
        75.0, ge=0, description="Dollars the campaign may spend on answers, gold included."
    )
    max_rounds: int = Field(10, ge=1, description="The campaign stops after this many rounds.")
    target_accuracy: float = Field(
        0.97, gt=0, le=1, description="The campaign stops once held-out accuracy reaches this."
    )


class ScheduleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    round_cron: str | None = Field(
        "0 2 * * *",
        description='When `labelflow serve` runs a labeling round (cron, UTC); "never" for rounds only when the '
        "inbox has grown (or by hand).",
    )

    @field_validator("round_cron")
    @classmethod
    def _a_cron_prefect_accepts(cls, value: str | None) -> str | None:
        """Parsed by the schedule `labelflow serve` builds from it, so a bad string fails at load, not at serve.
        TOML has no null: "never" stands for no schedule."""
        if value == "never":
            return None
        if value is not None:
            from prefect.client.schemas.schedules import CronSchedule

            try:
                CronSchedule(cron=value, timezone="UTC")
            except ValidationError as error:
                raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return value


class LeaseConfig(BaseModel):
    """How a round (and ``labelflow serve``) shows it is alive, and when a silent one is judged dead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    heartbeat_seconds: float = Field(
        10.0, gt=0, description="How often a running round or serve process refreshes its lease's heartbeat."
    )
    stale_after_seconds: float = Field(
        60.0,
        gt=0,
        description="A lease whose heartbeat is older than this is taken over, its holder judged dead (a killed "
        "worker on another host); on the holder's own host, a holder whose process has ended is judged dead at "
        "once.",
    )

    @model_validator(mode="after")
    def _several_beats_per_timeout(self) -> LeaseConfig:
        if self.stale_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(
                f"lease.stale_after_seconds ({self.stale_after_seconds:g}) must be at least 3 x "
                f"lease.heartbeat_seconds ({self.heartbeat_seconds:g}): a beat or two delayed on a busy machine "
                "must not make a live holder look dead"
            )
        return self


class ProjectConfig(BaseModel):
    """Everything a labeling campaign needs to know; ``labelflow init`` writes a commented example."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("digits-demo", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Project name.")
    labels: tuple[str, ...] = Field(
        tuple(str(d) for d in range(10)), description="Label names; empty means the labels found in the data."
    )
    store_url: str = Field(
        "sqlite:///.labelflow/labelflow.db",
        description="SQLAlchemy URL of the label store: SQLite, or PostgreSQL as "
        "\"postgresql+psycopg://user@host:5432/db\" (pip install 'labelflow[postgres]'), its password from "
        "PGPASSWORD or store_password_secret, never written here.",
    )
    store_password_secret: str | None = Field(
        None,
        description="The name of a Prefect Secret block holding the store's database password (instead of "
        "PGPASSWORD).",
    )
    workdir: str = Field(".labelflow", description="Where models, plots and exports go.")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    crowd: CrowdConfig = Field(default_factory=CrowdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    # The default project is the digits demo: its pixels suit a kernel model (TrainingConfig's own default, the
    # linear model, stays the one for any pool, a million rows included).
    training: TrainingConfig = Field(
        default_factory=lambda: TrainingConfig(model="kernel_logistic_regression")
    )
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    weak_supervision: WeakSupervisionConfig = Field(default_factory=WeakSupervisionConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    inbox: InboxConfig = Field(default_factory=InboxConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    lease: LeaseConfig = Field(default_factory=LeaseConfig)

    @field_validator("store_url")
    @classmethod
    def _an_sqlalchemy_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        from labelflow.integrations.store.engine import SUPPORTED_DIALECTS, password_refusal

        try:
            url = make_url(value)
            url.get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError):
            raise ValueError(
                'not an SQLAlchemy database URL; e.g. "sqlite:///.labelflow/labelflow.db" or '
                '"postgresql+psycopg://user@host/db"'
            ) from None
        if url.get_backend_name() not in SUPPORTED_DIALECTS:
            raise ValueError(
                f"the label store runs on {' or '.join(SUPPORTED_DIALECTS)}, not {url.get_backend_name()}"
            )
        if (refusal := password_refusal(value)) is not None:
            raise ValueError(refusal)
        return value

    @model_validator(mode="after")
    def _labels_fit_the_source(self) -> ProjectConfig:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {list(self.labels)}")
        if self.dataset.source == DIGITS and set(self.labels) != {str(d) for d in range(10)}:
            raise ValueError('the digits demo has the labels "0" … "9"; leave `labels` at its default')
        unknown = self.task.unknown_labels(self.labels) if self.labels else []
        if unknown:
            raise ValueError(
                f"task.labels describes {unknown}, which are not among the labels {list(self.labels)}"
            )
        return self

    @model_validator(mode="after")
    def _images_reach_mturk_workers(self) -> ProjectConfig:
        # `dataset.kind` gains "image" with the image datasets; read it loosely until then.
        is_image = getattr(self.dataset, "kind", None) == "image"
        if is_image and self.crowd.backend == "mturk" and not self.crowd.mturk.image_bucket:
            raise ValueError(
                "images on MTurk need crowd.mturk.image_bucket: set it to an S3 bucket you own (images too large "
                "to inline in a HIT, 64 KB, are uploaded there and shown to workers through presigned links; "
                "images given as http(s) URLs are shown as they are)"
            )
        return self

    @model_validator(mode="after")
    def _dask_engine_reads_tables(self) -> ProjectConfig:
        if self.selection.engine == "dask" and self.dataset.kind in ("text", "image"):
            raise ValueError(
                f'selection.engine = "dask" scores the feature columns of a table; a {self.dataset.kind} '
                'dataset\'s features come from its featurizer: use engine = "local"'
            )
        return self

    @model_validator(mode="after")
    def _plugins_import(self) -> ProjectConfig:
        """A plug-in that cannot be imported is refused when the file loads, not in the middle of a round."""
        if self.training.model not in BUILT_IN_MODELS:
            load_callable(self.training.model, "training.model")
        if self.features.function is not None:
            load_callable(self.features.function, "features.function")
        return self


def _shown(field: str, value: object) -> object:
    """A refused value as an error may repeat it: a store URL's password hidden."""
    if field == "store_url" and isinstance(value, str):
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            return make_url(value).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            return value
    return value


def _error_lines(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        given = (
            f" (got {_shown(field, item['input'])!r})"
            if "input" in item and not isinstance(item["input"], dict)
            else ""
        )
        lines.append(f"  - {field}: {item['msg']}{given}")
    return lines


def describe_errors(error: ValidationError, source: str) -> str:
    return "\n".join([f"{source}: {error.error_count()} invalid value(s):", *_error_lines(error)])


def _non_finite_numbers(data: object, field: str = "") -> list[str]:
    """Every ``inf`` or ``nan`` in the parsed file, as an error line naming its field: TOML allows them, and no
    setting means anything by them (a budget of ``inf`` would only fail mid-round)."""
    if isinstance(data, dict):
        return [
            line
            for key, value in data.items()
            for line in _non_finite_numbers(value, f"{field}.{key}" if field else str(key))
        ]
    if isinstance(data, list):
        return [line for k, value in enumerate(data) for line in _non_finite_numbers(value, f"{field}.{k}")]
    if isinstance(data, float) and not math.isfinite(data):
        return [f"  - {field}: must be a finite number (got {data})"]
    return []


def parse_config(data: dict[str, Any], source: str = "config") -> ProjectConfig:
    problems = _non_finite_numbers(data)
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as error:
        problems.extend(line for line in _error_lines(error) if line not in problems)
    if problems:
        raise ConfigError("\n".join([f"{source}: {len(problems)} invalid value(s):", *problems]))
    return config


def load_config(path: Path) -> ProjectConfig:
    """Read and validate ``path``; a relative dataset path is later resolved against the file's folder."""
    if not path.exists():
        raise ConfigError(f"{path}: no such file; `labelflow init` writes a commented example")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text: byte 0x{error.object[error.start]:02x} at position {error.start} "
            "(save the file as UTF-8)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_config(data, str(path))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


# What `labelflow init --kind K` sets beyond the defaults, and the lines that say what to do next.
COLD_START_NOTE = (
    "Gold and held-out items (dataset.n_gold, n_held_out) come from labeled rows; with too few, "
    "`labelflow bootstrap` has you label them in Label Studio first (docs/label-studio.md)."
)
KIND_SETTINGS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "table": (
        {
            "name": "my-table-project",
            "labels": (),
            "dataset": {"source": "items.csv", "kind": "table", "n_held_out": 100},
            "training": {"model": "logistic_regression"},
        },
        [
            "A table: items.csv (or .parquet / .jsonl) with item_id, numeric feature columns and a label column",
            "(empty for unlabeled rows). Every numeric column is a feature unless dataset.feature_columns lists them.",
            COLD_START_NOTE,
        ],
    ),
    "text": (
        {
            "name": "my-text-project",
            "labels": (),
            "dataset": {"source": "items.csv", "kind": "text", "text_column": "text", "n_held_out": 100},
            "training": {"model": "logistic_regression"},
        },
        [
            "Text: items.csv (or .parquet / .jsonl) with item_id, text and label (empty for unlabeled rows).",
            "Features: word + char TF-IDF, fitted once on the pool and kept sparse; the model trains on them.",
            'Your own embeddings instead: [features] function = "my_module:embed" (texts -> 2-D array).',
            COLD_START_NOTE,
        ],
    ),
    "image": (
        {
            "name": "my-image-project",
            "labels": (),
            "dataset": {"source": "images", "kind": "image", "n_held_out": 100},
            "training": {"model": "logistic_regression"},
        },
        [
            "Images: a folder (here images/) of .jpg/.png files, one sub-folder per label for labeled ones;",
            "or a .csv / .parquet / .jsonl with item_id, image (a path relative to the file, or an http(s)",
            'URL) and label: then set dataset.source to the file and image_column = "image".',
            "Features: colour histogram + HOG of each image downscaled to features.image_size pixels.",
            'Your own embeddings instead: [features] function = "my_module:embed" (paths -> 2-D array).',
            COLD_START_NOTE,
        ],
    ),
}
DATASET_KINDS = tuple(KIND_SETTINGS)


def example_config(kind: str | None = None) -> str:
    """The default config as commented TOML: every field, its default and its description; with ``kind``
    ('table', 'text' or 'image'), a starting point for a project of that kind instead of the digits demo."""
    if kind is not None and kind not in KIND_SETTINGS:
        raise ValueError(f"kind must be one of {', '.join(DATASET_KINDS)} (got {kind!r})")
    settings, notes = KIND_SETTINGS[kind] if kind else ({}, [])
    lines = [
        "# labelflow project config. Every value shown is the default"
        + (f", except those set for {'an' if kind == 'image' else 'a'} {kind} project" if kind else "")
        + "; delete what you do not change.",
        *(f"# {note}" for note in notes),
        "",
    ]

    def section(model: type[BaseModel], instance: BaseModel, prefix: str) -> None:
        nested: list[tuple[str, type[BaseModel], BaseModel]] = []
        for name, field in model.model_fields.items():
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                nested.append((name, type(value), value))
                continue
            if field.description:
                lines.append(f"# {field.description}")
            if value is None:
                lines.append(f'# {name} = "..."  (unset)')
            elif isinstance(value, dict) and not value:
                # A table of tables: an empty inline `name = {}` could not be extended by [name.key] tables.
                lines.append(f"# [{prefix}{name}.<key>] tables  (none)")
            else:
                lines.append(f"{name} = {_toml_value(value)}")
        for name, sub_model, sub in nested:
            lines.extend(["", f"[{prefix}{name}]"])
            section(sub_model, sub, f"{prefix}{name}.")

    section(ProjectConfig, ProjectConfig.model_validate(settings), "")
    return "\n".join(lines) + "\n"
