"""`make gc`: what local runs leave behind, trimmed to the recent and the serving.

Every job keeps its folder (inputs, code, log) so a failure can be read afterwards, and every
deployed version keeps its unpacked model. Nothing else deletes them; this keeps the newest few,
and always the version that serves. Registered versions and their artifacts are never removed:
the registry may name them again.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ml.context import Context

STALE_TEMPORARY_SECONDS = 3600  # an atomic write's temporary file this old belongs to no live writer


@dataclass(frozen=True)
class Removed:
    job_dirs: int
    version_dirs: int
    bytes: int


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _remove(path: Path) -> int:
    size = _size(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return size


def _newest_first(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)


def collect(ctx: Context, keep: int) -> Removed:
    state = ctx.config.state_dir
    freed = 0
    jobs = _newest_first([p for p in (state / "jobs").glob("*") if p.is_dir()]) if (state / "jobs").exists() else []
    for job in jobs[keep:]:
        freed += _remove(job)
    versions_root = state / "endpoint" / "versions"
    serving: set[str] = set()
    serving_file = state / "endpoint" / "serving.json"
    if serving_file.exists():
        serving.add(Path(json.loads(serving_file.read_text())["model_dir"]).name)
    unpacked = _newest_first([p for p in versions_root.glob("v*") if p.is_dir()]) if versions_root.exists() else []
    kept = {p.name for p in unpacked[:keep]} | serving
    removed_versions = 0
    for directory in unpacked:
        if directory.name not in kept:
            freed += _remove(directory)
            for sibling in versions_root.glob(f"{directory.name}.*"):  # its tarball and check log
                freed += _remove(sibling)
            removed_versions += 1
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for temporary in state.rglob(".*.tmp"):
        if temporary.is_file() and temporary.stat().st_mtime < cutoff:
            freed += _remove(temporary)
    return Removed(len(jobs[keep:]), removed_versions, freed)
