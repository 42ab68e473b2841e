"""ORM tables: model versions, inspection runs and one row per inspected image.

This module is the contract between batch inspection (the writer) and analytics,
reports and the dashboard (the readers). The tables are created and changed only
by the Alembic migrations in ``db/migrations`` (never ``create_all`` at run time);
``tests/db`` checks that the migrations and these classes describe the same schema.

Timestamps are naive UTC (``utcnow()``) so SQLite and PostgreSQL compare and
bucket them identically. ``image_results`` repeats the run's category, line,
shift and lot so every result row is self-describing.

``result_counts`` is a rollup of ``image_results`` per run, hour, category,
line, shift, lot and known defect type, kept exact by database triggers
(migration 0002) on every insert, update and delete. Analytics aggregate its
few thousand rows instead of millions of results.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Status values of an inspection run.
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
#: Status values of one image result.
RESULT_STATUSES = ("ok", "error")
#: Model names with their own score columns in ``image_results``.
MEMBER_MODELS = ("cae", "unet", "patchcore")
#: Every model name a decision can come from; ``ensemble`` is the production decision.
MODEL_NAMES = (*MEMBER_MODELS, "ensemble")
#: Side of the ``anomaly_grid`` blob: the ensemble map downsampled to GRID_SIZE x GRID_SIZE uint8.
GRID_SIZE = 32

# Stable constraint names so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Integer primary keys that are 64-bit on PostgreSQL and the rowid alias on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Current time as naive UTC, the convention of every timestamp column."""
    return datetime.now(UTC).replace(tzinfo=None)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


run_models = Table(
    "run_models",
    Base.metadata,
    Column("run_id", Integer, ForeignKey("inspection_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("model_version_id", Integer, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
)


class ModelVersion(Base):
    """One trained model artifact in the registry (``<category>/<model_name>/<version>``)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("category", "model_name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    backbone_weights: Mapped[str | None] = mapped_column(String(1024))
    pretrained: Mapped[bool] = mapped_column(Boolean, default=False)
    threshold: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[str | None] = mapped_column(Text)  # JSON text
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    runs: Mapped[list[InspectionRun]] = relationship(secondary=run_models, back_populates="model_versions")


class InspectionRun(Base):
    """One batch inspection of a folder; counters are updated as results are committed."""

    __tablename__ = "inspection_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_inspection_runs_started_at", "started_at"),
        Index("ix_inspection_runs_category_line_shift_lot", "category", "line", "shift", "lot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    source_folder: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(128))
    line: Mapped[str | None] = mapped_column(String(128))
    shift: Mapped[str | None] = mapped_column(String(128))
    lot: Mapped[str | None] = mapped_column(String(128))
    operator: Mapped[str | None] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(255))
    models: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of {model, version, path, threshold}
    n_images: Mapped[int] = mapped_column(Integer, default=0)
    n_scored: Mapped[int] = mapped_column(Integer, default=0)
    n_errors: Mapped[int] = mapped_column(Integer, default=0)
    n_defective: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error_text: Mapped[str | None] = mapped_column(Text)

    model_versions: Mapped[list[ModelVersion]] = relationship(secondary=run_models, back_populates="runs")
    results: Mapped[list[ImageResult]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class ImageResult(Base):
    """The outcome of inspecting one image of a run: scores, decisions and anomaly location."""

    __tablename__ = "image_results"
    __table_args__ = (
        UniqueConstraint("run_id", "rel_path"),  # exactly-once resume; also the run_id index
        CheckConstraint(_in("status", RESULT_STATUSES), name="status"),
        # Aggregates read the result_counts rollup; these serve row-level reads:
        # time windows, "worst images" and "was this image inspected before?".
        Index("ix_image_results_inspected_at", "inspected_at"),
        Index("ix_image_results_ensemble_score", "ensemble_score"),
        Index("ix_image_results_content_hash", "content_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("inspection_runs.id", ondelete="CASCADE"))
    rel_path: Mapped[str] = mapped_column(String(1024))
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    known_defect_type: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error_text: Mapped[str | None] = mapped_column(Text)
    is_defective: Mapped[bool | None] = mapped_column(Boolean)
    ensemble_score: Mapped[float | None] = mapped_column(Float)
    cae_raw: Mapped[float | None] = mapped_column(Float)
    cae_score: Mapped[float | None] = mapped_column(Float)
    cae_defective: Mapped[bool | None] = mapped_column(Boolean)
    unet_raw: Mapped[float | None] = mapped_column(Float)
    unet_score: Mapped[float | None] = mapped_column(Float)
    unet_defective: Mapped[bool | None] = mapped_column(Boolean)
    patchcore_raw: Mapped[float | None] = mapped_column(Float)
    patchcore_score: Mapped[float | None] = mapped_column(Float)
    patchcore_defective: Mapped[bool | None] = mapped_column(Boolean)
    anomaly_area_fraction: Mapped[float | None] = mapped_column(Float)
    bbox_x: Mapped[int | None] = mapped_column(Integer)
    bbox_y: Mapped[int | None] = mapped_column(Integer)
    bbox_w: Mapped[int | None] = mapped_column(Integer)
    bbox_h: Mapped[int | None] = mapped_column(Integer)
    anomaly_grid: Mapped[bytes | None] = mapped_column(LargeBinary)  # GRID_SIZE*GRID_SIZE uint8
    # True when an earlier run already inspected the same content (``db.results.find_reinspections``);
    # NULL counts as a first inspection. Drives first-pass yield.
    is_reinspection: Mapped[bool | None] = mapped_column(Boolean)
    inspected_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Denormalised from the run so analytics filter one indexed table.
    category: Mapped[str | None] = mapped_column(String(128))
    line: Mapped[str | None] = mapped_column(String(128))
    shift: Mapped[str | None] = mapped_column(String(128))
    lot: Mapped[str | None] = mapped_column(String(128))

    run: Mapped[InspectionRun] = relationship(back_populates="results")


def _pairs(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for i, a in enumerate(names) for b in names[i + 1 :])


#: Model pairs whose agreement the rollup counts.
MODEL_PAIRS = _pairs(MODEL_NAMES)
#: Grouping keys of ``result_counts``; NULL strings are stored as '' so the key is unique.
RESULT_COUNT_KEYS = ("run_id", "hour_start", "category", "line", "shift", "lot", "defect_type")
#: Counters of ``result_counts``: per model scored / defective / first-pass counts, then agreement.
RESULT_COUNT_MEASURES = (
    "n_results",
    "n_errors",
    *(f"{kind}_{m}" for m in MODEL_NAMES for kind in ("n_scored", "n_defective", "n_first", "n_first_defective")),
    *(f"{kind}_{a}_{b}" for a, b in MODEL_PAIRS for kind in ("n_pair", "n_agree")),
    "n_multi",
    "n_all_agree",
)

result_counts = Table(
    "result_counts",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, nullable=False),  # no FK: rows leave through the delete trigger
    Column("hour_start", DateTime, nullable=False),
    *(Column(name, String(128), nullable=False) for name in ("category", "line", "shift", "lot", "defect_type")),
    *(Column(name, Integer, nullable=False, default=0) for name in RESULT_COUNT_MEASURES),
    UniqueConstraint(*RESULT_COUNT_KEYS),
    Index("ix_result_counts_hour_start", "hour_start"),
)
