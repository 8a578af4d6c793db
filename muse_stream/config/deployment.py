"""The deployment config: what an operator declares, and its records on the compacted config topic.

One record per key on ``<ns>.internal.config`` (a single partition, compacted):

=========================== =====================================================
key                         value body
=========================== =====================================================
``tenant/<name>``           :class:`TenantConfig` (its default intent)
``intent/<name>``           :class:`IntentConfig`
``predictor/<name>``        :class:`PredictorConfig` (name + the full PredictorSpec)
``route/<tenant>/<intent>`` :class:`RouteConfig` (live predictor + shadows)
``model/<sha256>``          :class:`ModelEntry` (the artifact is on the models topic)
``meta/version``            :class:`VersionMarker`: ends a change set
=========================== =====================================================

A null value (tombstone) deletes a key. Each value is an envelope
``{"format": "muse.config/1", "config_version": N, "body": {...}}``. A change set is all records of
one transaction followed by its ``meta/version`` marker; readers apply a change set only at its
marker, so nobody ever routes by half a change.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any, NamedTuple

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from muse_stream.errors import MuseError, validation_problems
from muse_stream.predictors import ModelRef, PredictorSpec
from muse_stream.topics import TopicError, describe_retention, parse_retention, validate_tenant_name

RECORD_FORMAT = "muse.config/1"
MARKER_KEY = "meta/version"
INTENT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
PREDICTOR_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KINDS = ("tenant", "intent", "predictor", "route", "model")


class ConfigError(MuseError):
    """A config that cannot be applied; ``problems`` lists every problem, each naming its key."""

    def __init__(self, header: str, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{header}: {len(self.problems)} problem(s):\n{lines}")


class RecordError(MuseError):
    """One config-topic record that cannot be decoded."""


class Problem(NamedTuple):
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _tenant_name(value: str) -> str:
    try:
        return validate_tenant_name(value)
    except TopicError as error:
        raise ValueError(str(error)) from None


def _intent_name(value: str) -> str:
    if not INTENT_PATTERN.match(value):
        raise ValueError(f"intent name {value!r} is invalid: use 1-64 lowercase letters, digits, '-' or '_'")
    return value


def _predictor_name(value: str) -> str:
    if not PREDICTOR_PATTERN.match(value):
        raise ValueError(f"predictor name {value!r} is invalid: use 1-128 letters, digits, '.', '_' or '-'")
    return value


TenantName = Annotated[str, AfterValidator(_tenant_name)]
IntentName = Annotated[str, AfterValidator(_intent_name)]
PredictorName = Annotated[str, AfterValidator(_predictor_name)]


class TenantConfig(BaseModel):
    model_config = _FROZEN

    name: TenantName
    default_intent: IntentName
    partitions: int | None = Field(
        default=None,
        ge=1,
        description="input/output partitions `muse config apply` creates the tenant's topics with (default 1); "
        "topics that exist keep theirs and must have at least this many (grow them with `muse tenants alter`)",
    )
    retention: str | None = Field(
        default=None,
        description="how long the tenant's input and labels topics keep records, e.g. `14d`, `36h` or `forever` "
        "(units ms, s, m, h, d): `muse config apply` sets it on them, so it is how far back `muse replay` can go; "
        "unset: topics keep what they have (7d when created)",
    )
    thresholds: tuple[float, ...] = Field(
        default=(),
        description="the score thresholds the tenant alerts at, in (0, 1): `muse config plan` shows the alert rate "
        "to expect at each when a live predictor changes (informational; scores do not depend on it)",
    )

    @field_validator("retention")
    @classmethod
    def _retention_is_a_duration(cls, retention: str | None) -> str | None:
        if retention is None:
            return None
        try:
            return describe_retention(str(parse_retention(retention)))  # one spelling: 336h is 14d
        except TopicError as error:
            raise ValueError(str(error)) from None

    @property
    def retention_ms(self) -> int | None:
        return None if self.retention is None else parse_retention(self.retention)

    @field_validator("thresholds")
    @classmethod
    def _thresholds_in_range(cls, thresholds: tuple[float, ...]) -> tuple[float, ...]:
        outside = [t for t in thresholds if not 0.0 < t < 1.0]
        if outside:
            raise ValueError(f"thresholds {outside} are not scores strictly between 0 and 1")
        return tuple(sorted(set(thresholds)))

    @property
    def key(self) -> str:
        return f"tenant/{self.name}"


class IntentConfig(BaseModel):
    model_config = _FROZEN

    name: IntentName
    description: str = ""

    @property
    def key(self) -> str:
        return f"intent/{self.name}"


class PredictorConfig(BaseModel):
    """A named predictor: routes refer to it by name; ``spec`` pins what it computes."""

    model_config = _FROZEN

    name: PredictorName
    spec: PredictorSpec

    @property
    def key(self) -> str:
        return f"predictor/{self.name}"

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def id(self) -> str:
        return self.spec.id


class RouteConfig(BaseModel):
    """``(tenant, intent) -> live predictor`` plus shadows scored on the side (never returned)."""

    model_config = _FROZEN

    tenant: TenantName
    intent: IntentName
    live: PredictorName
    shadows: tuple[PredictorName, ...] = ()

    @field_validator("shadows")
    @classmethod
    def _distinct_shadows(cls, shadows: tuple[str, ...]) -> tuple[str, ...]:
        repeated = sorted(name for name, n in Counter(shadows).items() if n > 1)
        if repeated:
            raise ValueError(f"shadow predictors {repeated} are listed more than once")
        return shadows

    @model_validator(mode="after")
    def _shadow_is_not_live(self) -> RouteConfig:
        if self.live in self.shadows:
            raise ValueError(f"predictor {self.live!r} is both live and a shadow; a shadow must differ from the live predictor")
        return self

    @property
    def key(self) -> str:
        return f"route/{self.tenant}/{self.intent}"


class ModelEntry(ModelRef):
    """An artifact the config's predictors run, as the config record model/<sha256>: the same
    fields as the ModelRef a predictor spec pins, plus its config key. The bytes are on the models topic."""

    @property
    def key(self) -> str:
        return f"model/{self.sha256}"


class VersionMarker(BaseModel):
    """The last record of a change set: readers apply the set when they reach it."""

    model_config = _FROZEN

    config_version: int = Field(ge=1)
    changed: tuple[str, ...]
    applied_at: datetime


Entry = TenantConfig | IntentConfig | PredictorConfig | RouteConfig | ModelEntry
ENTRY_TYPES: dict[str, type[Entry]] = {
    "tenant": TenantConfig,
    "intent": IntentConfig,
    "predictor": PredictorConfig,
    "route": RouteConfig,
    "model": ModelEntry,
}


def reference_problems(entries: Iterable[Entry], declared_invalid: Iterable[str] = ()) -> list[Problem]:
    """Duplicate keys and dangling references among ``entries``: every problem, not the first.

    ``declared_invalid``: keys declared in a file but refused (their problem is reported already),
    so a reference to one of them is no second, misleading problem."""
    entries = list(entries)
    refused = set(declared_invalid)
    problems: list[Problem] = []
    counts = Counter(entry.key for entry in entries)
    problems += [Problem(key, f"declared {n} times; declare each key once") for key, n in counts.items() if n > 1]
    tenants = {e.name: e for e in entries if isinstance(e, TenantConfig)}
    intents = {e.name for e in entries if isinstance(e, IntentConfig)}
    predictors = {e.name: e for e in entries if isinstance(e, PredictorConfig)}
    models = {e.sha256: e for e in entries if isinstance(e, ModelEntry)}
    routes = {(e.tenant, e.intent) for e in entries if isinstance(e, RouteConfig)}
    for entry in entries:
        if isinstance(entry, TenantConfig):
            if entry.default_intent not in intents:
                if f"intent/{entry.default_intent}" not in refused:
                    problems.append(
                        Problem(
                            entry.key,
                            f"default intent {entry.default_intent!r} is not declared; add intent/{entry.default_intent}",
                        )
                    )
            elif (entry.name, entry.default_intent) not in routes and f"route/{entry.name}/{entry.default_intent}" not in refused:
                problems.append(
                    Problem(
                        entry.key,
                        f"default intent {entry.default_intent!r} has no route: add route/{entry.name}/{entry.default_intent}",
                    )
                )
        elif isinstance(entry, RouteConfig):
            if entry.tenant not in tenants and f"tenant/{entry.tenant}" not in refused:
                problems.append(Problem(entry.key, f"tenant {entry.tenant!r} is not declared; declare it or remove the route"))
            if entry.intent not in intents and f"intent/{entry.intent}" not in refused:
                problems.append(Problem(entry.key, f"intent {entry.intent!r} is not declared; declare it or remove the route"))
            for role, name in [("live", entry.live)] + [("shadow", s) for s in entry.shadows]:
                if name not in predictors and f"predictor/{name}" not in refused:
                    problems.append(
                        Problem(
                            entry.key,
                            f"{role} predictor {name!r} is not declared (a route to nowhere); declare predictor/{name} or route elsewhere",
                        )
                    )
        elif isinstance(entry, PredictorConfig):
            ref = entry.spec.model
            meta = models.get(ref.sha256)
            if meta is None:
                problems.append(
                    Problem(
                        entry.key, f"its model {ref.name}:{ref.version} (sha256 {ref.sha256}) has no model/{ref.sha256} entry"
                    )
                )
            elif (meta.name, meta.version, meta.format) != (ref.name, ref.version, ref.format):
                problems.append(
                    Problem(
                        entry.key,
                        f"its model reference {ref.name}:{ref.version} disagrees with model/{ref.sha256} ({meta.name}:{meta.version})",
                    )
                )
    return problems


def model_entries(predictors: Iterable[PredictorConfig]) -> tuple[ModelEntry, ...]:
    """One ``model/<sha256>`` entry per distinct artifact the predictors run."""
    entries: dict[str, ModelEntry] = {}
    for predictor in predictors:
        ref = predictor.spec.model
        entries.setdefault(ref.sha256, ModelEntry(**ref.model_dump()))
    return tuple(entries.values())


class DeploymentConfig(BaseModel):
    """A whole, consistent deployment: the tenants, intents, predictors, routes and models."""

    model_config = _FROZEN

    tenants: tuple[TenantConfig, ...] = ()
    intents: tuple[IntentConfig, ...] = ()
    predictors: tuple[PredictorConfig, ...] = ()
    routes: tuple[RouteConfig, ...] = ()
    models: tuple[ModelEntry, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentConfig:
        problems = reference_problems(self.entries())
        if problems:
            raise ValueError("; ".join(map(str, problems)))
        return self

    @classmethod
    def build(
        cls,
        *,
        tenants: Iterable[TenantConfig],
        intents: Iterable[IntentConfig],
        predictors: Iterable[PredictorConfig],
        routes: Iterable[RouteConfig],
    ) -> DeploymentConfig:
        """A config whose ``models`` are derived from the predictors' specs."""
        predictors = tuple(predictors)
        return cls(
            tenants=tuple(tenants),
            intents=tuple(intents),
            predictors=predictors,
            routes=tuple(routes),
            models=model_entries(predictors),
        )

    @classmethod
    def from_entries(cls, entries: Iterable[Entry]) -> DeploymentConfig:
        groups: dict[str, list[Any]] = {kind: [] for kind in KINDS}
        for entry in entries:
            groups[entry.key.partition("/")[0]].append(entry)
        return cls(**{f"{kind}s": tuple(sorted(items, key=lambda e: e.key)) for kind, items in groups.items()})

    def entries(self) -> Iterator[Entry]:
        yield from self.tenants
        yield from self.intents
        yield from self.predictors
        yield from self.routes
        yield from self.models

    def bodies(self) -> dict[str, bytes]:
        """Key -> canonical JSON of its body: what the diff compares."""
        return {entry.key: canonical_body(entry) for entry in self.entries()}

    def predictor(self, name: str) -> PredictorConfig:
        return next(p for p in self.predictors if p.name == name)


# -- records -----------------------------------------------------------------------------------


def canonical_body(entry: BaseModel) -> bytes:
    return orjson.dumps(entry.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def encode_value(body: Mapping[str, Any] | BaseModel, config_version: int) -> bytes:
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else dict(body)
    return orjson.dumps({"format": RECORD_FORMAT, "config_version": config_version, "body": data}, option=orjson.OPT_SORT_KEYS)


def _check_key(kind: str, rest: str) -> None:
    if kind not in ENTRY_TYPES or not rest:
        raise RecordError(f"unknown key kind {kind!r}; expected one of {', '.join(KINDS)} or {MARKER_KEY}")


def decode_record(key: bytes | str | None, value: bytes | None) -> tuple[str, Entry | VersionMarker | None]:
    """``(key, entry)`` of one config-topic record; entry None for a tombstone. Raises RecordError."""
    if key is None:
        raise RecordError("record has no key")
    text = key.decode("utf-8", errors="replace") if isinstance(key, bytes) else key
    kind, _, rest = text.partition("/")
    if text != MARKER_KEY:
        _check_key(kind, rest)
    if value is None:
        if text == MARKER_KEY:
            raise RecordError("the version marker cannot be deleted")
        return text, None
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise RecordError(f"value is not JSON ({error})") from None
    if not isinstance(envelope, dict) or envelope.get("format") != RECORD_FORMAT or "body" not in envelope:
        raise RecordError(f"value is not a {RECORD_FORMAT} envelope with a body")
    model = VersionMarker if text == MARKER_KEY else ENTRY_TYPES[kind]
    try:
        entry = model.model_validate(envelope["body"])
    except ValidationError as error:
        raise RecordError(f"invalid {kind}: {validation_problems(error, whole='(body)')}") from None
    if isinstance(entry, VersionMarker):
        return text, entry
    if entry.key != text:
        raise RecordError(f"body describes {entry.key!r}, not its key {text!r}")
    return text, entry
