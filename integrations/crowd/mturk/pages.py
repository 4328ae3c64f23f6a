"""Each item's HIT page, ready to post: the template of :mod:`.forms` filled from config, with its image made
reachable by the worker's browser.

An image given as an http(s) URL or a data URI is shown as it is. A local file goes inline as a data URI when
the whole question still fits MTurk's 65,535-byte limit; otherwise it is uploaded (once, keyed by its content
hash) to ``crowd.mturk.image_bucket`` and shown through a presigned S3 GET URL that lasts as long as the HIT
can be worked on (at most 7 days, SigV4's limit).
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from labelflow.integrations.crowd.base import CrowdBackendError
from labelflow.integrations.crowd.mturk.config import MTurkConfig
from labelflow.integrations.crowd.mturk.forms import (
    QUESTION_MAX,
    ItemKind,
    hit_page,
    item_html,
    looks_like_image,
    question_size,
    question_xml,
)
from labelflow.integrations.crowd.task import TaskConfig

PRESIGN_MAX_SECONDS: Final = 7 * 24 * 3600


class ImageHost:
    """Makes an image payload fit for a HIT page: as it is, inline, or uploaded to S3 behind a presigned URL.

    ``s3`` is a boto3 S3 client; by default one is made for ``config.s3_endpoint_url`` when first needed.
    """

    def __init__(self, config: MTurkConfig, s3: Any = None) -> None:
        self.config = config
        self._s3 = s3
        self._uploaded: set[str] = set()

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            self._s3 = boto3.session.Session().client(
                "s3",
                endpoint_url=self.config.s3_endpoint_url,
                region_name=self.config.image_bucket_region,
                config=Config(signature_version="s3v4"),  # SigV2 presigned URLs are deprecated
            )
        return self._s3

    def src(self, item_id: str, payload: str, room: int) -> str:
        """What the page's ``<img src>`` gets for ``payload``, given ``room`` bytes left for it."""
        if payload.lower().startswith(("http://", "https://", "data:image/")):
            return payload
        path = Path(payload.removeprefix("file://"))
        if not path.is_file():
            raise CrowdBackendError(f"item {item_id!r}: image {payload!r} is not a file")
        data = path.read_bytes()
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        inline = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        if len(inline) <= room:
            return inline
        if not self.config.image_bucket:
            raise CrowdBackendError(
                f"item {item_id!r}: image {path} ({len(data):,} bytes) is too large to inline in a HIT "
                f"(MTurk takes {QUESTION_MAX:,} bytes per question); set crowd.mturk.image_bucket to an S3 "
                "bucket to upload it to, or give images as http(s) URLs"
            )
        return self._presigned(path, data, mime)

    def _presigned(self, path: Path, data: bytes, mime: str) -> str:
        bucket = self.config.image_bucket
        key = f"{self.config.image_prefix}{hashlib.sha256(data).hexdigest()}{path.suffix.lower()}"
        if key not in self._uploaded:
            # Content-addressed: a rerun, or the same image in two items, uploads nothing new.
            self.s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=mime)
            self._uploaded.add(key)
        seconds = (
            int(self.config.lifetime_hours * 3600)
            + self.config.assignment_duration_minutes * 60
            + int(self.config.auto_approval_hours * 3600)  # the requester may look at it while reviewing
        )
        url: str = self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=min(seconds, PRESIGN_MAX_SECONDS)
        )
        return url


class HitPages:
    """The HIT page and HTMLQuestion of an item of ``kind``, from the ``[task]`` section and the labels."""

    def __init__(
        self, task: TaskConfig, label_names: Sequence[str], kind: ItemKind, images: ImageHost
    ) -> None:
        self.task = task
        self.label_names = list(label_names)
        self.kind = kind
        self.images = images

    def page(self, item_id: str, payload: str | None) -> str:
        """The exact HTML a worker's browser gets for the item."""
        if payload is None or not (self.kind == "image" or looks_like_image(payload)):
            return self._page(item_html(item_id, payload, self.kind))
        empty = question_size(question_xml(self._page(item_html(item_id, None, "image", image_src=""))))
        src = self.images.src(item_id, payload, room=QUESTION_MAX - empty)
        return self._page(item_html(item_id, None, "image", image_src=src))

    def _page(self, item: str) -> str:
        return hit_page(item, self.task, self.label_names)

    def question(self, item_id: str, payload: str | None) -> str:
        """The item's HTMLQuestion; raises :class:`CrowdBackendError` if it is over MTurk's size limit."""
        question = question_xml(self.page(item_id, payload))
        size = question_size(question)
        if size > QUESTION_MAX:
            raise CrowdBackendError(
                f"the question for item {item_id!r} is {size:,} bytes; MTurk takes at most {QUESTION_MAX:,} "
                "(shorten the item or task.instructions, or host the image: crowd.mturk.image_bucket)"
            )
        return question
