"""What `[data].source` names, read as the data step needs it: one CSV file.

The source may be a CSV file (relative to mlops.toml), a directory of CSV parts, or, in AWS
environments, an S3 prefix of CSV parts (`s3://<bucket>/<prefix>/`). Parts are read in key order
under one header, so new labelled data is one more part, and a retrain reads it: a retrain over
the committed file alone could never produce another model. The identity of a source changes
whenever its content does (a file's hash; the parts' names and hashes; the objects' keys, ETags
and sizes), so an unchanged source is never read again and a changed one always is.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml import atomic
from ml.context import Context
from ml.errors import DataValidationError
from ml.hashing import file_sha256, json_sha256


@dataclass(frozen=True)
class Source:
    identity: str
    parts: tuple[str, ...]  # local paths or s3:// URIs, in the order they are read


def resolve(ctx: Context) -> Source:
    source, root = ctx.config.data.source, ctx.config.root
    if source.startswith("s3://"):
        return _s3_source(ctx, source)
    path = (root / source).resolve()
    if path.is_file():
        return Source(file_sha256(path), (str(path),))
    if path.is_dir():
        parts = sorted(p for p in path.glob("*.csv") if p.is_file())
        if not parts:
            raise DataValidationError(f"[data].source {source!r} is a directory with no .csv parts in it ({path})")
        return Source(json_sha256([[p.name, file_sha256(p)] for p in parts]), tuple(str(p) for p in parts))
    raise DataValidationError(
        f"[data].source {source!r} does not exist (looked for {path}); fix the path in mlops.toml"
    )


def _s3_client(ctx: Context, source: str) -> Any:
    client = getattr(ctx.backends.artifacts, "client", None)
    if ctx.config.env == "local" or client is None:
        raise DataValidationError(
            f"[data].source {source!r} is an S3 prefix, which the AWS environments read (MLOPS_ENV=dev, staging "
            "or prod); locally, point it at a CSV file or a directory of CSV parts"
        )
    return client


def _s3_source(ctx: Context, source: str) -> Source:
    client = _s3_client(ctx, source)
    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    objects = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects += [o for o in page.get("Contents", []) if o["Key"].endswith(".csv")]
    if not objects:
        raise DataValidationError(f"[data].source {source!r} holds no .csv objects; upload the data there first")
    objects.sort(key=lambda o: o["Key"])
    identity = json_sha256([[o["Key"], o["ETag"], o["Size"]] for o in objects])
    return Source(identity, tuple(f"s3://{bucket}/{o['Key']}" for o in objects))


def local_copy(ctx: Context, source: Source) -> Path:
    """The source as one local CSV file: the file itself, or its parts under one header (cached by identity)."""
    if len(source.parts) == 1 and not source.parts[0].startswith("s3://"):
        return Path(source.parts[0])
    combined = ctx.config.state_dir / "cache" / "data-source" / f"{source.identity}.csv"
    if combined.exists():
        return combined
    with tempfile.TemporaryDirectory() as scratch:
        header: str | None = None
        lines: list[str] = []
        for number, part in enumerate(source.parts):
            local = Path(part)
            if part.startswith("s3://"):
                bucket, _, key = part.removeprefix("s3://").partition("/")
                local = Path(scratch) / f"part-{number}.csv"
                _s3_client(ctx, part).download_file(bucket, key, str(local))
            text = local.read_text(encoding="utf-8").splitlines()
            if not text:
                continue
            if header is None:
                header = text[0]
            elif text[0] != header:
                raise DataValidationError(
                    f"{part} has the header {text[0][:80]!r}, not the first part's {header[:80]!r}: every part of "
                    "[data].source needs the same columns in the same order"
                )
            lines += text[1:]
        atomic.write_text(combined, "\n".join([header or "", *lines]) + "\n")
    return combined
