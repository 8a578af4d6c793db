"""Content-addressed storage of model artifacts and registry records.

:class:`ArtifactStore` is deliberately three methods so other back ends (a Kafka topic) can be added
without touching the registry. :class:`FileArtifactStore` keeps objects under
``ROOT/objects/ab/<sha256>`` and records under ``ROOT/records/<name>/<version>.json``; every write
is a temp file plus ``os.replace``, so readers never see a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from muse_stream.errors import MuseError

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ArtifactError(MuseError):
    """An artifact that is missing, corrupt or does not match what was registered."""


@runtime_checkable
class ArtifactStore(Protocol):
    """Bytes addressed by their sha256."""

    def put(self, data: bytes) -> str: ...

    def get(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...


@runtime_checkable
class RecordStore(Protocol):
    """Small named documents (registry records) next to the artifacts."""

    def put_record(self, name: str, version: str, data: bytes) -> None: ...

    def get_record(self, name: str, version: str) -> bytes | None: ...

    def list_records(self) -> list[bytes]: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ArtifactError(f"{sha256!r} is not a sha256 digest (64 lowercase hex characters)")
    return sha256


def check_segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise ArtifactError(
            f"{what} {value!r} is not usable: use letters, digits, '.', '_' or '-' (starting with a letter or digit)"
        )
    return value


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


class FileArtifactStore:
    """An :class:`ArtifactStore` and :class:`RecordStore` in a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        if text.startswith("file:"):
            parsed = urlparse(text)
            text = unquote(parsed.path)
        self.root = Path(text).expanduser()

    def __repr__(self) -> str:
        return f"FileArtifactStore({str(self.root)!r})"

    def location(self, sha256: str) -> Path:
        """The file that holds artifact ``sha256`` (for error messages and tooling)."""
        check_sha256(sha256)
        return self.root / "objects" / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        path = self.location(digest)
        if not (path.exists() and sha256_hex(path.read_bytes()) == digest):
            atomic_write(path, bytes(data))
        return digest

    def get(self, sha256: str) -> bytes:
        path = self.location(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(
                f"artifact {sha256} is not in the store: {path} does not exist (register the model first)"
            ) from None
        actual = sha256_hex(data)
        if actual != sha256:
            raise ArtifactError(
                f"artifact file {path} is corrupt: its content hashes to {actual}, not {sha256}; "
                "re-register the model from its original file"
            )
        return data

    def exists(self, sha256: str) -> bool:
        return self.location(sha256).is_file()

    def _record_path(self, name: str, version: str) -> Path:
        return self.root / "records" / check_segment(name, "model name") / f"{check_segment(version, 'model version')}.json"

    def put_record(self, name: str, version: str, data: bytes) -> None:
        atomic_write(self._record_path(name, version), data)

    def get_record(self, name: str, version: str) -> bytes | None:
        try:
            return self._record_path(name, version).read_bytes()
        except FileNotFoundError:
            return None

    def list_records(self) -> list[bytes]:
        return [path.read_bytes() for path in sorted((self.root / "records").glob("*/*.json"))]


def open_store(uri: str | os.PathLike[str]) -> FileArtifactStore:
    """A store for a directory path or ``file://`` URI (other schemes arrive with their back ends)."""
    text = os.fspath(uri)
    scheme = urlparse(text).scheme
    if scheme not in ("", "file") and not re.fullmatch(r"[A-Za-z]", scheme):  # allow Windows drive letters
        raise ArtifactError(f"artifact store {text!r}: scheme {scheme!r} is not supported here; use a directory or file:// URI")
    return FileArtifactStore(text)
