"""The TensorRT plan cache, keyed by everything that makes a plan valid.

A plan (a serialized TensorRT engine) only runs on the TensorRT version and the GPU model that
built it, for the precision and input shapes it was built with, from that very ONNX file. The
cache key is the hash of all of these, so any change builds a new plan; the plan's own hash is
kept beside it, so a truncated or corrupt plan is rebuilt, never loaded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("AVSTREAM_ENGINE_CACHE", Path.home() / ".cache" / "avstream" / "engines"))


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class PlanKey:
    """What a plan is valid for."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    precision: str  # fp16 | fp32 | int8
    input_shapes: tuple  # ((name, (dims...)), ...)

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


class PlanCache:
    """Plans in a folder: ``<digest>.plan`` and ``<digest>.json`` (the key and the plan's hash)."""

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder else default_cache_dir()

    def paths(self, key: PlanKey):
        d = key.digest()
        return self.folder / f"{d}.plan", self.folder / f"{d}.json"

    def load(self, key: PlanKey) -> bytes | None:
        """The plan for ``key``, or None when there is none or it does not match its record."""
        plan, record = self.paths(key)
        try:
            meta = json.loads(record.read_text())
            data = plan.read_bytes()
        except (OSError, ValueError):
            return None
        if meta.get("key") != json.loads(json.dumps(asdict(key))):
            log.warning("plan cache: %s does not belong to this key; rebuilding", plan)
            return None
        if hashlib.sha256(data).hexdigest() != meta.get("plan_sha256"):
            log.warning("plan cache: %s is corrupt (hash mismatch); rebuilding", plan)
            return None
        return data

    def store(self, key: PlanKey, data: bytes) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        plan, record = self.paths(key)
        tmp = plan.with_suffix(".plan.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, plan)  # atomic: a reader never sees half a plan
        record.write_text(json.dumps({"key": asdict(key), "plan_sha256": hashlib.sha256(data).hexdigest()},
                                     indent=1))
        return plan

    def invalidate(self, key: PlanKey) -> None:
        for p in self.paths(key):
            p.unlink(missing_ok=True)

    def get_or_build(self, key: PlanKey, build) -> bytes:
        """The cached plan, or ``build()``'s (stored before it is returned)."""
        data = self.load(key)
        if data is None:
            log.info("building a TensorRT plan (%s, %s); this takes a while once", key.precision, key.gpu_name)
            data = build()
            self.store(key, data)
        return data

    def entries(self) -> list:
        """[(plan path, record dict)] of every plan in the folder."""
        out = []
        for record in sorted(self.folder.glob("*.json")):
            try:
                out.append((record.with_suffix(".plan"), json.loads(record.read_text())))
            except (OSError, ValueError):
                out.append((record.with_suffix(".plan"), {"error": "unreadable record"}))
        return out
