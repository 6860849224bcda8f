"""Database schema as SQLModel tables: the single definition Alembic migrations are checked against.

Queries on hot paths are written in SQL (see each domain's ``repository.py``); these classes
document the tables, their constraints and their indexes in one place.
"""

from datetime import date, datetime
from typing import Any
from uuid import UUID

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import UserDefinedType
from sqlmodel import Field, SQLModel

from api.codes import (
    AGREMENT_STATES,
    CARER_STATUSES,
    DEROGATION_REASONS,
    DISABILITY_PROFILES,
    FORMULAS,
    HOLD_STATUSES,
    MEASURE_KINDS,
    OUTCOME_REASONS,
    PDE_CATEGORIES,
    PUBLICS,
    REQUEST_EVENTS_ALL,
    REQUEST_STATUSES,
    SUSPENSION_REASONS,
    TEMPORALITIES,
    TIMINGS,
    URGENCIES,
    WAITING_SITUATIONS,
    WITHDRAWAL_REASONS,
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _reason_check(column: str, statuses: tuple[str, ...]) -> str:
    """``reason_code`` coded on the transitions that take one (``OUTCOME_REASONS``), absent on
    the others (migration 0019)."""
    cases = " ".join(f"WHEN '{k}' THEN {_in('reason_code', OUTCOME_REASONS[k])}" for k in statuses)
    return f"CASE {column} {cases} ELSE reason_code IS NULL END"


def _subset(column: str, values: tuple[str, ...]) -> str:
    return f"{column} <@ ARRAY[{', '.join(repr(v) for v in values)}]::text[]"


def _needs_checks(table: str) -> tuple[CheckConstraint, ...]:
    """An offer's needs columns (migration 0017): known codes, none empty, months 0…263."""
    needs = " AND ".join(
        f"{_subset(c, v)} AND cardinality({c}) > 0"
        for c, v in (("timings", TIMINGS), ("publics", PUBLICS), ("formulas", FORMULAS))
    )
    return (
        CheckConstraint(needs, name=f"{table}_needs"),
        CheckConstraint(
            "age_min_months >= 0 AND age_min_months <= age_max_months AND age_max_months <= 263",
            name=f"{table}_ages_months",
        ),
    )


def _disability_checks(table: str) -> tuple[CheckConstraint, ...]:
    """Each level's profiles are known codes, and a profile has one level (0018)."""
    return (
        CheckConstraint(
            _subset("disability_specialised", DISABILITY_PROFILES),
            name=f"{table}_disability_specialised",
        ),
        CheckConstraint(
            _subset("disability_supported", DISABILITY_PROFILES),
            name=f"{table}_disability_supported",
        ),
        CheckConstraint(
            "NOT (disability_specialised && disability_supported)",
            name=f"{table}_disability_disjoint",
        ),
    )


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (``xid8``), which SQLAlchemy does not name."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


ischema_names.setdefault("xid8", Xid8)  # reflected as itself (the models' comparison test)


def _changed_xid() -> Any:
    """The transaction that last wrote the row (0023, a trigger): what the search's index of
    the free offer (``api.search.offer_index``) reads its changes by."""
    return Column(Xid8(), nullable=False, server_default=text("'0'"))


def _point() -> Any:
    return Geography(geometry_type="POINT", srid=4326, spatial_index=False)


def _now() -> Any:
    return Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def _uuid_pk() -> Any:
    return Column(PgUUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


class Department(SQLModel, table=True):
    __tablename__ = "departments"
    code: str = Field(primary_key=True, max_length=3)
    name: str
    region_code: str
    region_name: str
    location: Any = Field(sa_column=Column(_point(), nullable=False))


class Authority(SQLModel, table=True):
    """A competent authority for child protection (migration 0007, docs/domain.md): one
    department in general, the Métropole de Lyon and the Rhône within 69, Corse over 2A and
    2B, Alsace over 67 and 68. Departments stay as geography."""

    __tablename__ = "authorities"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9][0-9A-Z]{1,2}$'", name="authorities_code_check"),
        CheckConstraint(
            "kind IN ('departement', 'metropole', 'collectivite_unique',"
            " 'collectivite_europeenne', 'ville_departement')",
            name="authorities_kind_check",
        ),
        CheckConstraint("cardinality(departments) >= 1", name="authorities_departments_check"),
    )
    code: str = Field(primary_key=True)
    name: str
    kind: str
    departments: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))


class Commune(SQLModel, table=True):
    __tablename__ = "communes"
    __table_args__ = (
        CheckConstraint(
            "precision IN ('geonames', 'arrondissement_centroid', 'department_centroid')",
            name="communes_precision_check",
        ),
        Index("communes_location_gist", "location", postgresql_using="gist"),
        Index("communes_department_idx", "department"),
        Index("communes_authority_idx", "authority"),
    )
    insee: str = Field(primary_key=True, max_length=5)
    name: str
    department: str = Field(foreign_key="departments.code")
    authority: str = Field(foreign_key="authorities.code")
    """The competent authority on the commune: what every row placed by it inherits."""
    population: int = Field(ge=0)
    location: Any = Field(sa_column=Column(_point(), nullable=False))
    precision: str


class Structure(SQLModel, table=True):
    """An establishment (FINESS établissement) of a child-protection category."""

    __tablename__ = "structures"
    __table_args__ = (
        CheckConstraint(
            "finess ~ '^([0-9]{2}|2A|2B|9[A-F])[0-9]{7}$'", name="structures_finess_format"
        ),
        CheckConstraint(_in("category", PDE_CATEGORIES), name="structures_category_check"),
        CheckConstraint(
            "location_precision IN ('address', 'commune')", name="structures_location_precision"
        ),
        Index("structures_location_gist", "location", postgresql_using="gist"),
        Index("structures_department_category_idx", "department", "category"),
        Index("structures_postal_code_idx", "postal_code"),
        Index("structures_authority_idx", "authority"),
    )
    id: UUID = Field(sa_column=_uuid_pk())
    finess: str = Field(max_length=9, unique=True)
    finess_ej: str | None = Field(default=None, max_length=9)
    name: str
    category: str = Field(max_length=3)
    department: str = Field(foreign_key="departments.code")
    commune: str = Field(foreign_key="communes.insee")
    authority: str = Field(foreign_key="authorities.code")
    """Its commune's authority, set by a trigger from ``commune`` (migration 0007)."""
    address: str | None = None
    location: Any = Field(sa_column=Column(_point(), nullable=False))
    tarif_authority: str | None = None
    created_at: datetime = Field(sa_column=_now())
    postal_code: str | None = None
    location_precision: str = Field(
        default="address", sa_column_kwargs={"server_default": "address"}
    )
    """``address``: the establishment's own point; ``commune``: its commune's point, used
    when the FINESS extract gave no usable coordinates (flagged, never silent)."""
    imported_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    """Last FINESS import that created or changed the row; null if never imported."""


class Unit(SQLModel, table=True):
    """A unit (unité de vie) of a structure: what it accepts and how many places are installed."""

    __tablename__ = "units"
    __table_args__ = (
        *_needs_checks("units"),
        CheckConstraint(
            "sexes <@ ARRAY['F','M']::text[] AND cardinality(sexes) > 0", name="units_sexes"
        ),
        *_disability_checks("units"),
        CheckConstraint("installed >= 0", name="units_installed"),
        Index("units_structure_idx", "structure_id"),
    )
    id: UUID = Field(sa_column=_uuid_pk())
    structure_id: UUID = Field(
        sa_column=Column(PgUUID(as_uuid=True), ForeignKey("structures.id"), nullable=False)
    )
    name: str
    age_min_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    age_max_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    """Ages in months (0017); a pouponnière's or centre parental's at most 35 (API rule)."""
    sexes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    timings: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    publics: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    formulas: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    disability_specialised: list[str] = Field(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    )
    """Profiles the offer is built for (0018); disjoint from ``disability_supported``."""
    disability_supported: list[str] = Field(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    )
    """Profiles it takes with an outside service's support; silent on the others."""
    installed: int = Field(sa_column=Column(SmallInteger, nullable=False))
    is_default: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    """The unit the FINESS import gave an establishment from its category, until the
    establishment describes its own units (see ``interop.finess_units``)."""


class FosterCarer(SQLModel, table=True):
    """An assistant familial. ``location`` is their home: no search reads it, and it never
    leaves the database layer; search places them at ``public_location`` (their commune's
    point, trigger of migration 0010)."""

    __tablename__ = "foster_carers"
    __table_args__ = (
        CheckConstraint("agrement_capacity BETWEEN 1 AND 6", name="foster_carers_capacity"),
        CheckConstraint(
            "available_places >= 0 AND available_places <= agrement_capacity",
            name="foster_carers_available",
        ),
        *_needs_checks("foster_carers"),
        CheckConstraint(_in("status", CARER_STATUSES), name="foster_carers_status"),
        *_disability_checks("foster_carers"),
        Index("foster_carers_location_gist", "location", postgresql_using="gist"),
        Index("foster_carers_department_idx", "department"),
        Index("foster_carers_changed_idx", "changed_xid"),  # the search's index (0023)
        Index("foster_carers_authority_idx", "authority"),
        Index("foster_carers_authority_valid_until_idx", "authority", "valid_until"),
        Index(
            "foster_carers_employer_authority_idx",
            "employer_authority",
            postgresql_where=text("employer_authority IS NOT NULL"),
        ),
        Index(
            "foster_carers_employer_structure_idx",
            "employer_structure",
            postgresql_where=text("employer_structure IS NOT NULL"),
        ),
        CheckConstraint("valid_until > issued_on", name="foster_carers_validity_dates"),
        CheckConstraint(
            _in("agrement_state", AGREMENT_STATES), name="foster_carers_agrement_state"
        ),
        CheckConstraint(
            _in("suspension_reason", SUSPENSION_REASONS), name="foster_carers_suspension_reason"
        ),
        CheckConstraint(
            _in("withdrawal_reason", WITHDRAWAL_REASONS), name="foster_carers_withdrawal_reason"
        ),
        CheckConstraint(
            _in("derogation_reason", DEROGATION_REASONS), name="foster_carers_derogation_reason"
        ),
        CheckConstraint(
            "(employer_authority IS NULL) <> (employer_structure IS NULL)",
            name="foster_carers_employer",
        ),
    )
    id: UUID = Field(sa_column=_uuid_pk())
    agrement_number: str = Field(unique=True)
    agrement_department: str = Field(foreign_key="departments.code")
    department: str = Field(foreign_key="departments.code")
    commune: str = Field(foreign_key="communes.insee")
    authority: str = Field(foreign_key="authorities.code")
    """The authority of the home's commune, which issues the agrément (trigger, 0007)."""
    location: Any = Field(sa_column=Column(_point(), nullable=False))
    public_location: Any = Field(default=None, sa_column=Column(_point(), nullable=False))
    changed_xid: Any = Field(default=None, sa_column=_changed_xid())
    """Where search places the carer: their commune's point, kept so by a trigger (0010);
    reveals no more than the commune (docs/domain.md, "Privacy: carers' homes")."""
    agrement_capacity: int = Field(sa_column=Column(SmallInteger, nullable=False))
    age_min_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    age_max_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    timings: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    publics: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    formulas: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    disability_specialised: list[str] = Field(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    )
    """Profiles the offer is built for (0018); disjoint from ``disability_supported``."""
    disability_supported: list[str] = Field(
        sa_column=Column(ARRAY(Text), nullable=False, server_default=text("'{}'"))
    )
    """Profiles it takes with an outside service's support; silent on the others."""
    status: str = Field(default="active", sa_column_kwargs={"server_default": "active"})
    """The carer's word: ``active`` or ``leave`` (from ``leave_from``, or now, until
    ``status_until``). Suspension is the agrément's (``agrement_state``), the issuer's."""
    status_until: date | None = None
    leave_from: date | None = None
    available_places: int = Field(sa_column=Column(SmallInteger, nullable=False))
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    """The carer's part (free places, leave, preferences); the agrément has its own."""
    declared_at: datetime = Field(sa_column=_now())
    declared_by: str
    preferred_age_min_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    preferred_age_max_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    preferred_timings: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    preferred_publics: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    preferred_formulas: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    """The carer's preferences, within the agrément (``age_min_months``…``formulas``, which are
    the agrément's): what search matches (CHECK foster_carers_preferences)."""
    # The agrément, the issuing authority's (``authority``) — migration 0012, CASF L421-3…6.
    issued_on: date
    valid_until: date
    """Five years after ``issued_on`` unless said otherwise (trigger of 0012)."""
    agrement_state: str = Field(default="valid", sa_column_kwargs={"server_default": "valid"})
    """Stored: valid, suspended, withdrawn; ``expired`` is derived from ``valid_until``
    (SQL function ``places_agrement_state``)."""
    suspended_from: date | None = None
    suspended_until: date | None = None
    suspension_reason: str | None = None
    withdrawn_on: date | None = None
    withdrawal_reason: str | None = None
    renewal_requested_on: date | None = None
    derogation_children: int | None = Field(default=None, sa_column=Column(SmallInteger))
    derogation_reason: str | None = None
    derogation_until: date | None = None
    agrement_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    employer_authority: str | None = Field(default=None, foreign_key="authorities.code")
    """The employer when it is an authority (its ASE): the carer is its employee."""
    employer_structure: UUID | None = Field(
        default=None, sa_column=Column(PgUUID(as_uuid=True), ForeignKey("structures.id"))
    )
    """The employer when it is a private placement service (FINESS 236)."""
    employing_authority: str = Field(foreign_key="authorities.code")
    """The employer's authority (the structure's for a placement service), kept by the
    trigger of 0012: who may propose a closed carer, whose feed hears of holds on them."""
    open_to_other_authorities: bool = Field(sa_column=Column(Boolean, nullable=False))
    """Proposed to other authorities' searches: closed by default for an authority's
    employees, open for a placement service's (trigger of 0012)."""


class CarerDeclaration(SQLModel, table=True):
    """Append-only history of a carer's declared availability (the carer row is the snapshot)."""

    __tablename__ = "carer_declarations"
    __table_args__ = (
        Index("carer_declarations_carer_idx", "carer_id", "declared_at"),
        Index("carer_declarations_declared_at_brin", "declared_at", postgresql_using="brin"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    carer_id: UUID = Field(
        sa_column=Column(PgUUID(as_uuid=True), ForeignKey("foster_carers.id"), nullable=False)
    )
    available_places: int
    status: str
    status_until: date | None = None
    version: int
    declared_at: datetime = Field(sa_column=_now())
    declared_by: str
    source: str


_COUNTS_CHECKS = (
    "installed >= 0 AND occupied >= 0 AND reserved >= 0 AND closed >= 0 "
    "AND available >= 0 AND additional >= 0"
)
_USED_CHECK = "occupied + reserved + available + closed <= installed + additional"


class _CapacityCounts(SQLModel):
    """Counts per ROR status (TRE_R330), see ``api.capacity.ror`` for the code mapping."""

    temporality: str
    installed: int
    occupied: int
    reserved: int
    closed: int
    available: int
    additional: int
    available_gender: str = "any"
    version: int
    declared_at: datetime
    declared_by: str
    source: str


class CapacityDeclaration(_CapacityCounts, table=True):
    """Append-only history: every accepted declaration, never updated nor deleted."""

    __tablename__ = "capacity_declarations"
    __table_args__ = (
        CheckConstraint(_COUNTS_CHECKS, name="capacity_declarations_counts"),
        CheckConstraint(_USED_CHECK, name="capacity_declarations_used"),
        CheckConstraint(
            _in("temporality", TEMPORALITIES), name="capacity_declarations_temporality"
        ),
        CheckConstraint("available_gender IN ('any','F','M')", name="capacity_declarations_gender"),
        Index("capacity_declarations_unit_idx", "unit_id", "temporality", "declared_at"),
        Index("capacity_declarations_declared_at_brin", "declared_at", postgresql_using="brin"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    unit_id: UUID = Field(
        sa_column=Column(PgUUID(as_uuid=True), ForeignKey("units.id"), nullable=False)
    )


class CapacitySnapshot(_CapacityCounts, table=True):
    """The current state per unit and temporality, derived from the history in the same
    transaction; ``version`` drives optimistic concurrency (If-Match)."""

    __tablename__ = "capacity_snapshots"
    __table_args__ = (
        CheckConstraint(_COUNTS_CHECKS, name="capacity_snapshots_counts"),
        CheckConstraint(_USED_CHECK, name="capacity_snapshots_used"),
        CheckConstraint(_in("temporality", TEMPORALITIES), name="capacity_snapshots_temporality"),
        CheckConstraint("available_gender IN ('any','F','M')", name="capacity_snapshots_gender"),
        Index(
            "capacity_snapshots_available_idx",
            "temporality",
            "unit_id",
            postgresql_where=text("available > 0"),
        ),
        Index("capacity_snapshots_structure_idx", "structure_id"),  # the structures' trigger
        Index("capacity_snapshots_changed_idx", "changed_xid"),  # the search's index (0023)
        # Free places by department (0021; search's neighbours step until its index, 0023).
        Index(
            "capacity_snapshots_free_department_idx",
            "department",
            postgresql_where=text("available > 0"),
        ),
    )
    unit_id: UUID = Field(
        sa_column=Column(PgUUID(as_uuid=True), ForeignKey("units.id"), primary_key=True)
    )
    temporality: str = Field(primary_key=True)
    location: Any = Field(default=None, sa_column=Column(_point(), nullable=True))
    """The unit's structure's location, copied here so that a search walks free places
    nearest first through one GiST index (a lieu de vie's: its commune's, 0011)."""
    # Copies of the unit's and its structure's columns that a search filters on and shows
    # (0021): kept by triggers, so that a search reads one row per offer. Never written by
    # the service.
    structure_id: UUID = Field(sa_column=Column(PgUUID(as_uuid=True), nullable=False))
    structure_name: str = Field(sa_column=Column(Text, nullable=False))
    finess: str = Field(sa_column=Column(Text, nullable=False))
    category: str = Field(sa_column=Column(Text, nullable=False))
    department: str = Field(sa_column=Column(Text, nullable=False))
    commune: str = Field(sa_column=Column(Text, nullable=False))
    age_min_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    age_max_months: int = Field(sa_column=Column(SmallInteger, nullable=False))
    sexes: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    timings: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    publics: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    formulas: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    disability_specialised: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    disability_supported: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    changed_xid: Any = Field(default=None, sa_column=_changed_xid())


class OfferRemoval(SQLModel, table=True):
    """A snapshot or carer deleted (a statement trigger), or ``all`` for a TRUNCATE (0023):
    what the search's index of the free offer cannot learn from a row that is gone."""

    __tablename__ = "offer_removals"
    __table_args__ = (
        CheckConstraint("kind IN ('unit', 'carer', 'all')", name="offer_removals_kind_check"),
        Index("offer_removals_changed_idx", "changed_xid"),
    )
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    offer_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    temporality: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    changed_xid: Any = Field(
        default=None,
        sa_column=Column(Xid8(), nullable=False, server_default=text("pg_current_xact_id()")),
    )


SNAPSHOT_OFFER_COLUMNS = (
    "structure_id",
    "structure_name",
    "finess",
    "category",
    "department",
    "commune",
    "age_min_months",
    "age_max_months",
    "sexes",
    "timings",
    "publics",
    "formulas",
    "disability_specialised",
    "disability_supported",
)
"""The copies a snapshot carries for search (0021): not part of what a declaration records."""


class IdempotencyKey(SQLModel, table=True):
    """A write's Idempotency-Key, per principal, with the response to replay."""

    __tablename__ = "idempotency_keys"
    principal: str = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str
    status_code: int | None = None
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(sa_column=_now())


class OutboxEvent(SQLModel, table=True):
    """Transactional outbox: written in the same transaction as the change it announces."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("outbox_events_unpublished_idx", "id", postgresql_where=text("published_at IS NULL")),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    type: str
    department: str
    authority: str | None = None
    """The feed the event goes to (its authority); null on events written before 0007."""
    occurred_at: datetime = Field(sa_column=_now())
    data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    national_data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    published_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class FeedPosition(SQLModel, table=True):
    """Each feed's newest entry id, written by the outbox relay in the transaction that marks
    the events published (issue #19): a snapshot that sees this row holds every event up to
    that entry (those transactions committed before the relay read them), so a client that
    reads it with its snapshot resumes the feed from there and misses nothing, even when the
    snapshot came from a lagging standby."""

    __tablename__ = "feed_positions"
    feed: str = Field(primary_key=True)
    entry_id: str
    updated_at: datetime = Field(sa_column=_now())


class AuditEntry(SQLModel, table=True):
    """Who read or changed what, when, under which role."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("audit_entries_object_idx", "object_type", "object_id"),
        Index("audit_entries_occurred_at_brin", "occurred_at", postgresql_using="brin"),
        # GET /v1/audit?request_id=…: hold actions carry detail.request_id, list reads
        # detail.request_ids (migration 0006).
        Index(
            "audit_entries_request_id_idx",
            text("(detail->>'request_id')"),
            postgresql_where=text("detail ? 'request_id'"),
        ),
        Index(
            "audit_entries_request_ids_gin",
            text("(detail->'request_ids')"),
            postgresql_using="gin",
            postgresql_where=text("detail ? 'request_ids'"),
        ),
        Index("audit_entries_authority_idx", "authority", "id"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    occurred_at: datetime = Field(sa_column=_now())
    actor: str
    role: str
    action: str
    object_type: str
    object_id: str
    department: str | None = None
    authority: str | None = None
    detail: dict[str, Any] = Field(
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'"))
    )
    person_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    """The person (``persons.id``) behind the token; null for local role tokens."""
    function: str | None = None
    """The habilitation's function the actor acted under (``api.permissions.FUNCTIONS``)."""
    actor_authority: str | None = None
    """The authority the actor acted for (their habilitation's, or their token's)."""


# --- Persons and habilitations (migration 0008) ----------------------------------------------


class Person(SQLModel, table=True):
    """The identity provider's subject: ``issuer`` + ``sub`` (ProConnect, Pro Santé Connect, or
    the local issuer). ``signed_out_at``: tokens issued before it are refused."""

    __tablename__ = "persons"
    __table_args__ = (UniqueConstraint("issuer", "sub", name="persons_issuer_sub_key"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    issuer: str
    sub: str
    display_name: str | None = None
    email: str | None = None
    siret: str | None = None
    """ProConnect: the SIRET of the person's employer (a collectivity, an establishment)."""
    rpps: str | None = None
    """Pro Santé Connect: the professional's national identifier (``SubjectNameID``)."""
    created_at: datetime = Field(sa_column=_now())
    signed_out_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Habilitation(SQLModel, table=True):
    """A function on a territory, granted to a person; revoked rows stay for the record."""

    __tablename__ = "habilitations"
    __table_args__ = (
        CheckConstraint(
            "function IN ('orientation_officer', 'ase_manager', 'pmi_agrement', 'inspector',"
            " 'establishment_director', 'establishment_staff', 'carer', 'national_analyst',"
            " 'authority_admin', 'platform_operator')",
            name="habilitations_function_check",
        ),
        Index(
            "habilitations_person_live_idx",
            "person_id",
            postgresql_where=text("revoked_at IS NULL"),
        ),
        Index("habilitations_authority_idx", "authority", "id"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    person_id: int = Field(sa_column=Column(BigInteger, ForeignKey("persons.id"), nullable=False))
    function: str
    authority: str | None = Field(default=None, foreign_key="authorities.code")
    finess: str | None = None
    carer_id: UUID | None = Field(default=None, sa_column=Column(PgUUID(as_uuid=True)))
    granted_by: str
    granted_at: datetime = Field(sa_column=_now())
    revoked_by: str | None = None
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class AuditSeal(SQLModel, table=True):
    """One sealed segment of the audit (migration 0009): the entries with ids ``first_id`` to
    ``last_id``, their count, the digest of their rows in id order and a hash chained with the
    previous seal's (``api.audit.service``). Written once, never updated by the service;
    ``purged_at`` is set by ``places purge`` (as the owner) when the segment's entries are
    deleted, the seal itself staying as the chain's checkpoint."""

    __tablename__ = "audit_seals"
    __table_args__ = (
        CheckConstraint("last_id >= first_id AND entries >= 0", name="audit_seals_range"),
        Index("audit_seals_last_id_idx", "last_id", unique=True),
    )
    segment: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    first_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    entries: int
    rows_digest: str = Field(max_length=64)
    previous_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    sealed_at: datetime = Field(sa_column=_now())
    purged_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


# --- Orientation workflow: placement requests, their history, holds -------------------------


class PlacementRequest(SQLModel, table=True):
    """A department's demande d'orientation: pseudonymous by construction.

    ``children`` holds age in months (``age_months``), sex and disability profiles only: the
    API refuses any other field, so no name, birth date or address can reach this table.
    ``reference`` is the department's own file number. ``origin_location`` is a commune
    centroid, or the given point rounded to 0.01° (about 1 km) so that a family's home is never
    stored.
    """

    __tablename__ = "placement_requests"
    __table_args__ = (
        CheckConstraint(
            "jsonb_typeof(children) = 'array' AND jsonb_array_length(children) <= 12"
            " AND (jsonb_array_length(children) >= 1 OR parent_expecting)",
            name="placement_requests_children",
        ),
        CheckConstraint(_in("timing", TIMINGS), name="placement_requests_timing"),
        CheckConstraint(_in("public", PUBLICS), name="placement_requests_public"),
        CheckConstraint(_in("formula", FORMULAS), name="placement_requests_formula"),
        CheckConstraint(
            "NOT parent_expecting OR formula = 'parent_enfant'",
            name="placement_requests_parent_expecting",
        ),
        CheckConstraint(_in("urgency", URGENCIES), name="placement_requests_urgency"),
        CheckConstraint(_in("measure_kind", MEASURE_KINDS), name="placement_requests_measure"),
        CheckConstraint(_in("status", REQUEST_STATUSES), name="placement_requests_status"),
        CheckConstraint(
            "min_distance_km IS NULL OR (min_distance_km >= 0 AND min_distance_km <= 1200)",
            name="placement_requests_min_distance",
        ),
        CheckConstraint(
            "jsonb_typeof(siblings_placed) = 'array' AND jsonb_array_length(siblings_placed) <= 8",
            name="placement_requests_siblings_placed",
        ),
        # The waiting list and the measures not executed: per department, by status, oldest first.
        Index("placement_requests_department_status_idx", "department", "status", "decided_on"),
        Index("placement_requests_authority_status_idx", "authority", "status", "decided_on"),
        # Children, not requests (#18): one child's requests within its authority.
        Index("placement_requests_child_idx", "authority", "child_key"),
    )
    id: UUID = Field(sa_column=_uuid_pk())
    department: str = Field(foreign_key="departments.code")
    authority: str = Field(foreign_key="authorities.code")
    """The authority in charge: the origin commune's (or the nearest commune's to the point)."""
    reference: str = Field(max_length=64)
    child_key: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The child's pseudonymous key within the authority (``api.requests.children``): HMAC of
    the authority and the normalised reference; none only on rows written straight to the
    table (each then counts as its own child)."""
    children: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    origin_commune: str | None = Field(default=None, foreign_key="communes.insee")
    origin_location: Any = Field(sa_column=Column(_point(), nullable=False))
    timing: str
    public: str
    formula: str
    parent_expecting: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    """A future parent (formula parent_enfant only, CASF L222-5-3): no child needed yet."""
    urgency: str
    measure_kind: str
    decided_on: date
    separation_ordered: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    """The siblings may be placed apart (decision recorded; search splits from its first step)."""
    min_distance_km: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    """The place must be kept at least this far from the family (search, #16)."""
    school_commune: str | None = Field(default=None, foreign_key="communes.insee")
    """The child's school: a second origin, scored by search (#16)."""
    siblings_placed: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    )
    """Where brothers and sisters already live: ``{kind, id, commune}`` (a carer by id and
    commune only, never a point), scored by search (Code civil art. 371-5, #16)."""
    status: str = Field(default="waiting", sa_column_kwargs={"server_default": "waiting"})
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    created_by: str
    created_at: datetime = Field(sa_column=_now())
    updated_at: datetime = Field(sa_column=_now())


class RequestEvent(SQLModel, table=True):
    """Append-only status history of a placement request (one row per transition)."""

    __tablename__ = "request_events"
    __table_args__ = (
        CheckConstraint(_in("event", REQUEST_EVENTS_ALL), name="request_events_event"),
        CheckConstraint(_in("to_status", REQUEST_STATUSES), name="request_events_to_status"),
        CheckConstraint(
            _reason_check("event", ("refused", "released", "cancelled", "exited")),
            name="request_events_reason_code",
        ),
        Index("request_events_request_idx", "request_id", "id"),
        # The windows of the indicators (#18): admissions and refusals by instant (0020).
        *(
            Index(
                f"request_events_{event}_idx",
                "occurred_at",
                postgresql_include=["request_id", "hold_id"],
                postgresql_where=text(f"event = '{event}'"),
            )
            for event in ("admitted", "refused")
        ),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    request_id: UUID = Field(
        sa_column=Column(PgUUID(as_uuid=True), ForeignKey("placement_requests.id"), nullable=False)
    )
    occurred_at: datetime = Field(sa_column=_now())
    event: str
    from_status: str | None = None
    to_status: str
    hold_id: UUID | None = Field(
        default=None, sa_column=Column(PgUUID(as_uuid=True), ForeignKey("holds.id"))
    )
    actor: str
    role: str
    reason: str | None = None
    """Free text beside the code: the authority's own, never exported nor national."""
    reason_code: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The coded reason of a refusal, release, cancellation or exit (``api.codes``)."""


class Hold(SQLModel, table=True):
    """A réservation of ``places`` (the request's group size) on a unit or a foster carer.

    ``held`` counts in the target's reserved places until it is admitted (then occupied),
    released, refused or expired (then available again); an admitted hold is the placement,
    and its exit gives the places back. See ``api.capacity.moves`` for the capacity rule.
    """

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint(_in("status", HOLD_STATUSES), name="holds_status"),
        CheckConstraint(
            "(target_kind = 'unit' AND unit_id IS NOT NULL AND carer_id IS NULL)"
            " OR (target_kind = 'carer' AND carer_id IS NOT NULL AND unit_id IS NULL)",
            name="holds_target",
        ),
        CheckConstraint("places BETWEEN 1 AND 12", name="holds_places"),
        CheckConstraint(
            _reason_check("status", ("refused", "released", "exited")), name="holds_reason_code"
        ),
        # A request has at most one live hold or placement: the database says so too.
        Index(
            "holds_one_active_per_request",
            "request_id",
            unique=True,
            postgresql_where=text("status IN ('held', 'admitted')"),
        ),
        # The expiry pass: only live holds, by deadline.
        Index("holds_due_idx", "expires_at", postgresql_where=text("status = 'held'")),
        # Places held on a unit / carer (re-declaration check, listings).
        Index("holds_unit_idx", "unit_id", "status", postgresql_where=text("unit_id IS NOT NULL")),
        Index(
            "holds_carer_idx", "carer_id", "status", postgresql_where=text("carer_id IS NOT NULL")
        ),
    )
    id: UUID = Field(sa_column=_uuid_pk())
    request_id: UUID = Field(
        sa_column=Column(PgUUID(as_uuid=True), ForeignKey("placement_requests.id"), nullable=False)
    )
    target_kind: str
    unit_id: UUID | None = Field(
        default=None, sa_column=Column(PgUUID(as_uuid=True), ForeignKey("units.id"))
    )
    carer_id: UUID | None = Field(
        default=None, sa_column=Column(PgUUID(as_uuid=True), ForeignKey("foster_carers.id"))
    )
    places: int = Field(sa_column=Column(SmallInteger, nullable=False))
    status: str = Field(default="held", sa_column_kwargs={"server_default": "held"})
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    reason: str | None = None
    reason_code: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The coded reason of the refusal, release or exit (``api.codes``)."""
    created_by: str
    created_at: datetime = Field(sa_column=_now())
    updated_at: datetime = Field(sa_column=_now())


class RequestSituation(SQLModel, table=True):
    """Where a child waiting for its placement lives meanwhile, from ``since`` (#18); one row
    per change, the current one is the latest (``id``)."""

    __tablename__ = "request_situations"
    __table_args__ = (
        CheckConstraint(_in("situation", WAITING_SITUATIONS), name="request_situations_situation"),
        Index("request_situations_request_idx", "request_id", "id"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    request_id: UUID = Field(
        sa_column=Column(PgUUID(as_uuid=True), ForeignKey("placement_requests.id"), nullable=False)
    )
    situation: str
    since: date
    recorded_at: datetime = Field(sa_column=_now())
    recorded_by: str
