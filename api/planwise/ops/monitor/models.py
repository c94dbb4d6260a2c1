from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Identity, Index, Integer, String, func
from sqlmodel import Column, Field, SQLModel


class DbSizeSample(SQLModel, table=True):
    """One relation's size at one moment (the whole database is relation `database`)."""

    __tablename__ = "db_size_sample"
    __table_args__ = (
        Index("ix_db_size_sample_relation_sampled_at", "relation", "sampled_at"),
        # Pruning: rows arrive in time order, so a BRIN index finds the old ones; a
        # b-tree here would lure the planner away from the one above (growth figures).
        Index("ix_db_size_sample_sampled_at", "sampled_at", postgresql_using="brin"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    sampled_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False),
    )
    relation: str = Field(sa_column=Column(String(200), nullable=False))
    bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    rows: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class StatementSample(SQLModel, table=True):
    """What one statement (pg_stat_statements' queryid, this database) did between two
    samples: `seconds` long, ending at `sampled_at`. Deltas only, never negative."""

    __tablename__ = "statement_sample"
    __table_args__ = (
        Index("ix_statement_sample_queryid_sampled_at", "queryid", "sampled_at"),
        Index("ix_statement_sample_sampled_at", "sampled_at", postgresql_using="brin"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    sampled_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    queryid: int = Field(sa_column=Column(BigInteger, nullable=False))
    seconds: float = Field(sa_column=Column(Float, nullable=False))
    calls: int = Field(sa_column=Column(BigInteger, nullable=False))
    total_exec_ms: float = Field(sa_column=Column(Float, nullable=False))
    rows: int = Field(sa_column=Column(BigInteger, nullable=False))


class StatementCounters(SQLModel, table=True):
    """The totals the sampler last read per statement: the base of the next deltas."""

    __tablename__ = "statement_counters"

    queryid: int = Field(sa_column=Column(BigInteger, primary_key=True))
    sampled_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    stats_reset: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    calls: int = Field(sa_column=Column(BigInteger, nullable=False))
    total_exec_ms: float = Field(sa_column=Column(Float, nullable=False))
    rows: int = Field(sa_column=Column(BigInteger, nullable=False))


class MonitorSampleRun(SQLModel, table=True):
    """One run of the sampler: when, what it cost, and WAL archiving's state then.

    `slot` is the scheduled interval the run claimed (`floor(epoch / interval)`, unique, so
    API workers that wake for the same interval sample once); NULL for a run by hand
    (`planwise monitor sample`). Archive figures are NULL while archive_mode is off."""

    __tablename__ = "monitor_sample_run"
    __table_args__ = (Index("ix_monitor_sample_run_sampled_at", "sampled_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    sampled_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    slot: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    duration_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    rows_written: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    rows_pruned: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    archived_count: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    archive_failed_count: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )
    archive_age_seconds: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    archive_segments_waiting: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )


class ConnectionSample(SQLModel, table=True):
    """How many of this database's sessions were in one state at one sample."""

    __tablename__ = "connection_sample"
    __table_args__ = (Index("ix_connection_sample_sampled_at", "sampled_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    sampled_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    state: str = Field(sa_column=Column(String(64), nullable=False))
    count: int = Field(sa_column=Column(Integer, nullable=False))
