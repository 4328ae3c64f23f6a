"""Where new data arrives: a local folder or an S3 prefix, each with ``processed/`` and ``quarantine/`` beside it.

A file is identified by the SHA-256 of its content (so the same data under another name is still the same file),
read through one open file (never held whole in memory from a local folder), then moved to ``processed/`` or,
with a report, to ``quarantine/``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Destination = Literal["processed", "quarantine"]
DATA_SUFFIXES = (".csv", ".parquet", ".pq")


class InboxConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field("inbox", description='A folder (relative to the config file) or "s3://bucket/prefix".')
    s3_endpoint_url: str | None = Field(None, description="Another S3 endpoint (MinIO, moto); None for AWS.")
    watch_interval_seconds: float = Field(
        60.0, gt=0, description="How often the watcher looks for new files."
    )
    round_after_items: int = Field(
        50, ge=1, description="Start a labeling round once this many pool items arrived since the last one."
    )


def is_data_file(name: str) -> bool:
    """A CSV or Parquet file, unless hidden: a name starting with a dot is a file still being written (copy it in
    as ``.name.csv`` and rename it when whole), so the watcher never ingests half a file."""
    return Path(name).suffix.lower() in DATA_SUFFIXES and not name.startswith(".")


def checksum(content: bytes | BinaryIO) -> str:
    """The SHA-256 of ``content``; an open file is read in chunks and left at its start again."""
    if isinstance(content, bytes):
        return hashlib.sha256(content).hexdigest()
    digest = hashlib.sha256()
    while chunk := content.read(1 << 20):
        digest.update(chunk)
    content.seek(0)
    return digest.hexdigest()


class RefusedFileError(Exception):
    """A waiting entry the inbox will not read (a symbolic link, a device…); the message says why."""


class Inbox(Protocol):
    def waiting(self) -> list[str]:
        """Names of the data files waiting to be ingested, oldest name first."""
        ...

    def open(self, name: str) -> BinaryIO:
        """The file, open for reading (seekable; the caller closes it); :class:`RefusedFileError` if it is not a
        regular file of the inbox's own."""
        ...

    def plan(self, name: str, to: Destination) -> str:
        """Where ``move`` would put the file: a free location in ``processed/`` or ``quarantine/``."""
        ...

    def move(self, name: str, location: str, report: str | None = None) -> None:
        """Move the file out of the inbox to ``location`` (with ``<location>.report.txt`` if given)."""
        ...

    def exists(self, location: str) -> bool: ...

    def read_location(self, location: str) -> bytes:
        """The content of a file this inbox moved earlier."""
        ...


class LocalInbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def waiting(self) -> list[str]:
        # symbolic links and other non-regular entries are listed too, so that reading refuses them and
        # ingestion files them in quarantine with the reason, instead of leaving them unexplained
        return sorted(
            p.name
            for p in self.folder.iterdir()
            if is_data_file(p.name) and (p.is_symlink() or not p.is_dir())
        )

    def open(self, name: str) -> BinaryIO:
        """The file, never through a symbolic link: the pool must not depend on a file outside the inbox, which
        could change or vanish after ingestion."""
        path = self.folder / name
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RefusedFileError(
                    f"{name} is a symbolic link (to {os.readlink(path)}); the inbox takes regular files only: "
                    "copy the file itself into the inbox"
                ) from None
            raise
        file = os.fdopen(descriptor, "rb")
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            file.close()
            raise RefusedFileError(f"{name} is not a regular file; the inbox takes regular files only")
        return file

    def plan(self, name: str, to: Destination) -> str:
        target_dir = self.folder / to
        target_dir.mkdir(exist_ok=True)
        return str(_free_name(target_dir, name))

    def move(self, name: str, location: str, report: str | None = None) -> None:
        target = Path(location)
        shutil.move(self.folder / name, target)
        if report is not None:
            target.with_name(target.name + ".report.txt").write_text(report, encoding="utf-8")

    def exists(self, location: str) -> bool:
        return Path(location).exists()

    def read_location(self, location: str) -> bytes:
        return Path(location).read_bytes()

    def receive(self, source: Path) -> str:
        """Copy ``source`` into the inbox and return the name it waits under: its own name, or that name with a
        counter when a file of that name is already waiting, so nothing waiting is ever overwritten.

        The copy is written under a hidden name (which the watcher skips) and then hard-linked to its free name,
        which fails rather than replaces if another copy took that name in between.
        """
        partial = self.folder / f".{uuid.uuid4().hex}{source.suffix}.partial"
        shutil.copyfile(source, partial)
        try:
            return next(name for name in _names(source.name) if _link_if_free(partial, self.folder / name))
        finally:
            partial.unlink()


def _link_if_free(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    return True


def _names(name: str) -> Iterator[str]:
    """``name``, then ``name`` with a counter: ``new.csv``, ``new.1.csv``, ``new.2.csv``, …"""
    yield name
    for counter in itertools.count(1):
        yield f"{Path(name).stem}.{counter}{Path(name).suffix}"


def _free_name(folder: Path, name: str) -> Path:
    """``name`` in ``folder``, or ``name`` with a counter if taken: a second copy never overwrites the first."""
    return next(folder / candidate for candidate in _names(name) if not (folder / candidate).exists())


class S3Inbox:
    """An S3 prefix as an inbox; the client is passed in (any boto3 S3 client, e.g. pointed at moto or MinIO)."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def waiting(self) -> list[str]:
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
        ):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if is_data_file(name):
                    names.append(name)
        return sorted(names)

    def open(self, name: str) -> BinaryIO:
        return io.BytesIO(self.read_location(f"s3://{self.bucket}/{self.prefix}{name}"))

    def plan(self, name: str, to: Destination) -> str:
        # a second copy never overwrites the first
        target = next(
            f"{self.prefix}{to}/{c}" for c in _names(name) if not self._exists(f"{self.prefix}{to}/{c}")
        )
        return f"s3://{self.bucket}/{target}"

    def move(self, name: str, location: str, report: str | None = None) -> None:
        source = f"{self.prefix}{name}"
        target = location.removeprefix(f"s3://{self.bucket}/")
        self.client.copy_object(
            Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
        )
        self.client.delete_object(Bucket=self.bucket, Key=source)
        if report is not None:
            self.client.put_object(
                Bucket=self.bucket, Key=target + ".report.txt", Body=report.encode("utf-8")
            )

    def exists(self, location: str) -> bool:
        return self._exists(location.removeprefix(f"s3://{self.bucket}/"))

    def _exists(self, key: str) -> bool:
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
        return bool(found) and found[0]["Key"] == key

    def read_location(self, location: str) -> bytes:
        bucket, key = location.removeprefix("s3://").split("/", 1)
        body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


def open_inbox(config: InboxConfig, base_dir: Path) -> Inbox:
    if config.url.startswith("s3://"):
        import boto3

        bucket, _, prefix = config.url.removeprefix("s3://").partition("/")
        return S3Inbox(boto3.client("s3", endpoint_url=config.s3_endpoint_url), bucket, prefix)
    folder = Path(config.url)
    return LocalInbox(folder if folder.is_absolute() else (base_dir / folder).resolve())
