"""The declarative TOML file an operator edits, checked offline (no broker needed).

Layout (see ``topologies/example.toml``)::

    [[intents]]     name, description
    [[tenants]]     name, default_intent
    [[models]]      name, version, path (relative to this file), optional sha256 pin
    [[predictors]]  name, spec (a PredictorSpec JSON file, relative to this file)
    [[routes]]      tenant, intent, live, shadows = [...]

Arrays of tables rather than ``[tenants.bank-a]`` tables so that a tenant or route declared twice
is reported by its key instead of as a TOML syntax error. Loading reports *every* problem of the
file at once, each naming the key (``route/bank-a/card-fraud``) or table it comes from.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from muse_stream.config.deployment import (
    ConfigError,
    DeploymentConfig,
    Entry,
    IntentConfig,
    PredictorConfig,
    Problem,
    RouteConfig,
    TenantConfig,
    model_entries,
    reference_problems,
)
from muse_stream.errors import validation_problems
from muse_stream.models.registry import parse_booster
from muse_stream.models.store import ArtifactError, sha256_hex
from muse_stream.predictors import PredictorSpec, PredictorSpecError

SECTIONS = ("intents", "tenants", "models", "predictors", "routes")
MODEL_KEYS = ("name", "version", "path", "sha256")
PREDICTOR_KEYS = ("name", "spec")


@dataclass(frozen=True)
class LoadedDeployment:
    """A checked config and the artifact files it needs, by sha256."""

    source: Path
    config: DeploymentConfig
    artifacts: dict[str, Path]

    def artifact_bytes(self) -> dict[str, bytes]:
        return {sha: path.read_bytes() for sha, path in self.artifacts.items()}


def unknown_keys(given: Iterable[str], known: Iterable[str], what: str = "key") -> list[str]:
    """``unknown key 'shadow' (did you mean 'shadows'?)`` for each of ``given`` not in ``known``: a
    typo is named as such, with its closest known key, instead of surfacing as a missing field."""
    known = list(known)
    messages = []
    for key in sorted(set(given) - set(known)):
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        messages.append(f"unknown {what} {key!r} ({hint})")
    return messages


def _label(section: str, index: int, table: Any, fields: tuple[str, ...]) -> str:
    """The would-be record key of a table, for messages; its position when that is unknown."""
    kind = section[:-1]
    if isinstance(table, dict) and all(isinstance(table.get(f), str) for f in fields):
        return f"{kind}/" + "/".join(table[f] for f in fields)
    return f"[[{section}]] #{index + 1}"


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent
        self.typos: list[Problem] = []  # unknown keys and sections: reported first, they explain the rest
        self.problems: list[Problem] = []
        self.entries: list[Entry] = []
        self.artifacts: dict[str, Path] = {}
        self.invalid: set[str] = set()  # keys of tables declared but refused: references to them are no problem of their own

    def problem(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def refused(self, label: str, messages: list[str], unknown: list[str]) -> None:
        self.invalid.add(label)
        if unknown:
            self.typos.append(Problem(label, "; ".join(unknown + messages)))
        else:
            self.problem(label, "; ".join(messages))

    def validated(self, model: type[BaseModel], section: str, index: int, table: Any, fields: tuple[str, ...]) -> Any:
        label = _label(section, index, table, fields)
        unknown = unknown_keys(table, model.model_fields) if isinstance(table, dict) else []
        if unknown:  # validate the rest too, so every problem of the table shows at once
            table = {key: value for key, value in table.items() if key in model.model_fields}
        try:
            entry = model.model_validate(table)
        except ValidationError as error:
            self.refused(label, [validation_problems(error, whole="(table)")], unknown)
            return None
        if unknown:
            self.refused(label, [], unknown)
            return None
        return entry

    def load(self, data: dict[str, Any]) -> None:
        for section in sorted(set(data) - set(SECTIONS)):
            [message] = unknown_keys([section], SECTIONS, "section")
            self.typos.append(Problem(section, f"{message}; sections are {', '.join(f'[[{s}]]' for s in SECTIONS)}"))
        sections = {}
        for section in SECTIONS:
            tables = data.get(section, [])
            if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
                self.problem(section, f"must be an array of tables: write [[{section}]] for each entry")
                tables = []
            sections[section] = tables
        for kind, model, fields in (
            ("intents", IntentConfig, ("name",)),
            ("tenants", TenantConfig, ("name",)),
            ("routes", RouteConfig, ("tenant", "intent")),
        ):
            for index, table in enumerate(sections[kind]):
                entry = self.validated(model, kind, index, table, fields)
                if entry is not None:
                    self.entries.append(entry)
        self.load_models(sections["models"])
        predictors = [p for i, t in enumerate(sections["predictors"]) if (p := self.load_predictor(i, t)) is not None]
        self.entries += predictors
        self.entries += model_entries(predictors)
        self.problems += reference_problems(self.entries, declared_invalid=self.invalid)
        self.problems = self.typos + self.problems

    def load_models(self, tables: list[dict[str, Any]]) -> None:
        seen: dict[str, str] = {}
        for index, table in enumerate(tables):
            label = f"model {table.get('name')}:{table.get('version')}" if "name" in table else f"[[models]] #{index + 1}"
            unknown = unknown_keys(table, MODEL_KEYS)
            missing = [f for f in ("name", "version", "path") if not isinstance(table.get(f), str)]
            if unknown or missing:
                self.refused(label, [f"missing fields {missing}"] if missing else [], unknown)
                continue
            if label in seen:
                self.problem(
                    label, f"declared more than once (paths {seen[label]} and {table['path']}); declare each model version once"
                )
                continue
            seen[label] = table["path"]
            path = self.base / table["path"]
            try:
                data = path.read_bytes()
            except OSError as error:
                self.problem(
                    label, f"artifact file {path} cannot be read ({error.strerror}); fix the path (relative to {self.path})"
                )
                continue
            try:  # a corrupt file is named as such, not as a hash that matches nothing
                parse_booster(data, source=str(path))
            except ArtifactError as error:
                self.refused(label, [f"{error}; replace the file with the model it should hold"], [])
                continue
            digest = sha256_hex(data)
            if table.get("sha256") not in (None, digest):
                self.problem(
                    label,
                    f"artifact file {path} hashes to {digest}, not the pinned sha256 {table['sha256']}; "
                    "the file changed: pin the new hash only if the change is intended",
                )
                continue
            self.artifacts[digest] = path

    def load_predictor(self, index: int, table: dict[str, Any]) -> PredictorConfig | None:
        label = _label("predictors", index, table, ("name",))
        unknown = unknown_keys(table, PREDICTOR_KEYS)
        if unknown or not isinstance(table.get("spec"), str):
            self.refused(label, ["a predictor table holds `name` and `spec` (a predictor spec file)"], unknown)
            return None
        path = self.base / table["spec"]
        try:
            spec = PredictorSpec.load(path)
        except PredictorSpecError as error:
            self.refused(label, [str(error)], [])
            return None
        config = self.validated(PredictorConfig, "predictors", index, {"name": table.get("name"), "spec": spec}, ("name",))
        ref = spec.model
        if (
            config is not None
            and spec.model.sha256 not in self.artifacts
            and f"model {ref.name}:{ref.version}" not in self.invalid
        ):
            self.problem(
                label,
                f"its model {ref.name}:{ref.version} (sha256 {ref.sha256}) matches no readable [[models]] "
                f"artifact of this file; add [[models]] name = {ref.name!r}, version = {ref.version!r} with the file that hashes to it",
            )
        return config


def load_deployment_file(path: str | Path) -> LoadedDeployment:
    """Parse and check a deployment file; raise :class:`ConfigError` listing all of its problems."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"config file {path}", [Problem(str(path), f"cannot be read ({error.strerror})")]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}", [Problem(str(path), f"is not valid TOML: {error}")]) from None
    loader = _Loader(path)
    loader.load(data)
    if loader.problems:
        raise ConfigError(f"config file {path}", loader.problems)
    config = DeploymentConfig.from_entries(loader.entries)
    needed = {m.sha256 for m in config.models}
    return LoadedDeployment(path, config, {sha: p for sha, p in loader.artifacts.items() if sha in needed})
