"""The monitoring report as `GET /api/v1/admin/db` returns it: one model per part, so the
OpenAPI document says what each field is. The fields are `collect()`'s (report.py); a
figure the reading role may not see, or a part not read in time, is null or empty, and
`unavailable` says which and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class DbConnections(BaseModel):
    state: str = Field(description="pg_stat_activity state; `hidden` for other roles' "
                       "sessions without pg_read_all_stats, `background` for workers")  # fmt: skip
    application: str
    count: int


class DbStatement(BaseModel):
    query: str | None = Field(description="redacted, whitespace collapsed, cut")
    calls: int
    mean_ms: float
    total_ms: float
    rows: int


class DbLongRunning(BaseModel):
    pid: int
    application_name: str | None
    state: str | None
    seconds: float | None
    query: str | None


class DbBlocker(BaseModel):
    pid: int
    state: str | None
    application: str | None
    seconds: float | None = Field(description="age of the blocking session's transaction")
    query: str | None


class DbLockWait(BaseModel):
    pid: int
    blocked_by: list[int]
    wait_event: str | None
    seconds: float | None
    query: str | None
    blocking: list[DbBlocker]


class DbTable(BaseModel):
    table: str
    bytes: int | None = Field(description="null when ACCESS EXCLUSIVE is held or awaited")
    rows: int | None
    seq_scan: int | None
    idx_scan: int


class DbIndex(BaseModel):
    table: str
    index: str
    scans: int | None
    bytes: int | None
    unique: bool


class DbCache(BaseModel):
    kind: str = Field(description="`heap` or `index`")
    hits: int
    reads: int
    ratio: float | None


class DbTableCache(BaseModel):
    table: str
    hits: int
    reads: int
    index_hits: int
    index_reads: int
    ratio: float | None
    index_ratio: float | None


class DbArchiver(BaseModel):
    archive_mode: str | None
    archived_count: int | None
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int | None
    last_failed_wal: str | None
    last_failed_time: datetime | None
    current_wal: str | None
    wal_segment_bytes: int | None
    segments_waiting: int | None = Field(description="completed segments not archived yet")


class DbGrowth(BaseModel):
    relation: str
    since: datetime
    grown_bytes: int
    days: float


class DbDuplicateIndex(BaseModel):
    table: str
    index: str
    covered_by: str
    definition: str | None
    covered_by_definition: str | None
    bytes: int | None


class DbInvalidIndex(BaseModel):
    table: str
    index: str
    ready: bool
    definition: str | None


class DbMaintenance(BaseModel):
    table: str
    live_tuples: int | None
    dead_tuples: int | None
    dead_ratio: float | None
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None
    vacuum_count: int | None
    autovacuum_count: int | None
    analyze_count: int | None
    autoanalyze_count: int | None
    xid_age: int | None


class DbWraparound(BaseModel):
    database: str
    xid_age: int
    multixact_age: int
    freeze_max_age: int
    fraction_used: float = Field(description="xid_age of the 2^31 transaction IDs")


class DbSequence(BaseModel):
    schema_: str = Field(alias="schema")
    sequence: str
    last_value: int | None
    table: str | None
    column: str | None
    type: str | None
    max_value: int
    fraction_used: float | None


class DbBackups(BaseModel):
    directory: str | None
    newest_verified: str | None
    newest_verified_at: datetime | None
    age_hours: float | None
    note: str | None


class DbAppPool(BaseModel):
    size: float | None = None
    checked_out: float | None = None
    idle: float | None = None
    overflow: float | None = None
    timeouts: float | None = None


class PgBouncerPool(BaseModel):
    database: str
    user: str
    client_active: int
    client_waiting: int
    server_active: int
    server_idle: int
    server_used: int
    server_tested: int
    server_login: int
    max_wait_seconds: float
    servers: int


class PgBouncer(BaseModel):
    port: int
    pools: list[PgBouncerPool]
    stats: list[dict[str, Any]] = Field(description="SHOW STATS, one row per database")


class DbStandby(BaseModel):
    name: str | None = Field(description="its application_name")
    client_address: str | None
    state: str | None
    sync_state: str | None
    sent_lag_bytes: int | None
    write_lag_bytes: int | None
    flush_lag_bytes: int | None
    replay_lag_bytes: int | None
    write_lag_seconds: float | None
    flush_lag_seconds: float | None
    replay_lag_seconds: float | None = Field(description="0 once an idle standby caught up")
    reply_time: datetime | None


class DbReplicationSlot(BaseModel):
    name: str
    active: bool
    retained_bytes: int | None = Field(description="WAL kept for the slot")
    wal_status: str | None


class DbWalReceiver(BaseModel):
    status: str
    sender_host: str | None
    sender_port: int | None
    slot_name: str | None
    last_message_at: datetime | None


class DbReplay(BaseModel):
    lag_bytes: int | None = Field(description="received and not yet replayed")
    lag_seconds: float | None
    last_replayed_at: datetime | None
    paused: bool


class DbPatroniMember(BaseModel):
    name: str | None
    role: str | None
    state: str | None
    host: str | None
    port: int | None
    timeline: int | None
    lag_bytes: int | None


class DbPatroni(BaseModel):
    urls: list[str]
    answered: bool
    paused: bool
    leader: str | None
    members: list[DbPatroniMember]


class DbReplication(BaseModel):
    """planwise_replication() (migration 8d9e0f1a2b3c) and, in a Patroni cluster, its
    `/cluster`."""

    in_recovery: bool = Field(description="true on a standby")
    server_address: str | None
    server_port: int | None
    timeline: int
    standbys: list[DbStandby] = Field(description="on a primary: pg_stat_replication")
    slots: list[DbReplicationSlot]
    receiver: DbWalReceiver | None = Field(description="on a standby: its WAL receiver")
    replay: DbReplay | None = Field(description="on a standby")
    patroni: DbPatroni | None = None


class DatabaseReport(BaseModel):
    """The report of `planwise monitor --json`, plus the API's pool and PgBouncer."""

    collected_at: datetime
    connections: list[DbConnections]
    slowest_statements: list[DbStatement]
    most_time_consuming: list[DbStatement]
    slow_statement_count: int
    long_running: list[DbLongRunning]
    lock_waits: list[DbLockWait]
    database_bytes: int | None
    tables: list[DbTable]
    indexes: list[DbIndex]
    cache: list[DbCache]
    cache_by_table: list[DbTableCache]
    archiver: DbArchiver
    growth: list[DbGrowth]
    stats_reset: datetime | None
    duplicate_indexes: list[DbDuplicateIndex]
    invalid_indexes: list[DbInvalidIndex]
    maintenance: list[DbMaintenance]
    wraparound: DbWraparound | None
    sequences: list[DbSequence]
    replication: DbReplication | None = Field(
        description="streaming replication; null before migration 8d9e0f1a2b3c"
    )
    backups: DbBackups
    tables_not_sized: list[str]
    unavailable: dict[str, str] = Field(description="part → why it was not read")
    read_seconds: float
    unused_indexes: list[DbIndex]
    mostly_sequential: list[DbTable]
    app_pool: DbAppPool
    pgbouncer: PgBouncer | None = None
    problems: list[str] = Field(description="one line per crossed `--check` threshold")
