"""Typed SQLAlchemy 2 models: workspaces, plans, candidates, applications, invitations and their Slack faces."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class MissingClock(RuntimeError):
    """A row needed a timestamp but its session was built without the injected clock."""


def stamp(context: Any) -> datetime:
    """Column default: the current time from the clock the engine was given, never the wall clock.

    Every timestamp the store writes on its own (created, changed, due now) comes from the same injected
    clock as the services' comparisons, so a test clock, a replica with a skewed clock or a sandbox that
    moves time sees one consistent timeline. `store.db.make_session_factory(engine, clock)` puts the
    clock in the engine's execution options; a statement run without it fails loudly instead of
    quietly reading `datetime.now()`.
    """
    clock = context.execution_options.get("clock") if context is not None else None
    if clock is None:
        raise MissingClock("no clock for this statement: build sessions with store.db.make_session_factory(engine, clock)")
    moment = clock()
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise MissingClock(f"the clock returned {moment!r}, not a timezone-aware datetime")
    return moment


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    imocha_key_enc: Mapped[str | None] = mapped_column(Text)
    imocha_key_set_by: Mapped[str | None] = mapped_column(String(32))
    imocha_key_set_at: Mapped[datetime | None]
    gem_key_enc: Mapped[str | None] = mapped_column(Text)
    # Greenhouse Harvest v3 client credentials ({"client_id", "client_secret"} as JSON), Fernet-encrypted.
    harvest_credentials_enc: Mapped[str | None] = mapped_column(Text)
    gem_stage_ids: Mapped[list[Any] | None]
    default_channel_id: Mapped[str | None] = mapped_column(String(32))
    validity_days: Mapped[int] = mapped_column(Integer, default=7, server_default=text("7"))
    reminder_days: Mapped[int] = mapped_column(Integer, default=3, server_default=text("3"))
    # End of the last retrieve-invites window that fully succeeded; the next one starts before it.
    poll_checkpoint: Mapped[datetime | None]
    gem_checkpoint: Mapped[datetime | None]
    gem_full_scan_at: Mapped[datetime | None]
    # The last iMocha test list and when it was loaded, shared by replicas (bot/workspace/settings.py).
    tests_cache: Mapped[list[Any] | None]
    tests_loaded_at: Mapped[datetime | None]
    # An IANA zone name ("Europe/Berlin"); the weekly digest goes out Monday 09:00 there. None: UTC.
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=stamp)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("workspace_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # The ATS job id, or "name:<normalised name>" for jobs known only by name (manual sends).
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))


class Plan(Base):
    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("workspace_id", "job_key", "stage_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    job_key: Mapped[str] = mapped_column(String(200))
    job_label: Mapped[str] = mapped_column(String(200))
    stage_key: Mapped[str] = mapped_column(String(200))
    stage_label: Mapped[str] = mapped_column(String(200))
    test_id: Mapped[int] = mapped_column(BigInteger)
    test_name: Mapped[str] = mapped_column(String(300))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    pass_mark: Mapped[int | None] = mapped_column(Integer)
    share_scores_in_channel: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    weekly_digest: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=stamp)
    updated_at: Mapped[datetime] = mapped_column(default=stamp, onupdate=stamp)


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))  # lower-cased; None when the ATS has none


class Application(Base):
    """One candidate's application reaching one planned stage: the unit a card shows."""

    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id", "stage_key"),
        Index("ix_applications_workspace_status", "workspace_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(20))  # ats | greenhouse | gem | manual
    stage_key: Mapped[str] = mapped_column(String(200))
    stage_name: Mapped[str] = mapped_column(String(200))
    # The ATS's id of that stage when it sent one (Greenhouse: current_stage.id): where an Advance moves from.
    external_stage_id: Mapped[str | None] = mapped_column(String(200))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    test_id: Mapped[int] = mapped_column(BigInteger)
    test_name: Mapped[str] = mapped_column(String(300))
    pass_mark: Mapped[int | None] = mapped_column(Integer)
    share_scores_in_channel: Mapped[bool] = mapped_column(Boolean, default=False)
    owner_user_id: Mapped[str | None] = mapped_column(String(32))
    # one of bot.domain.AppStatus: the domain owns the vocabulary, the store keeps its value
    status: Mapped[str] = mapped_column(String(20), default="needs_sending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime] = mapped_column(default=stamp)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    current_invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id"))
    sending_by: Mapped[str | None] = mapped_column(String(32))
    sending_since: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(32))
    reviewed_at: Mapped[datetime | None]
    decision: Mapped[str | None] = mapped_column(String(10))  # advance | reject (bot.domain.Decision)
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None]
    external_candidate_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=stamp)
    updated_at: Mapped[datetime] = mapped_column(default=stamp, onupdate=stamp)

    candidate: Mapped[Candidate] = relationship(lazy="joined", innerjoin=True)
    job: Mapped[Job] = relationship(lazy="joined", innerjoin=True)
    current_invitation: Mapped[Invitation | None] = relationship(lazy="joined")


class Invitation(Base):
    """One iMocha test invitation (one attempt); several applications may share it."""

    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("workspace_id", "imocha_id"),
        Index("ix_invitations_open", "workspace_id", "status"),
        Index("ix_invitations_candidate_test", "workspace_id", "candidate_email", "test_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    imocha_id: Mapped[int] = mapped_column(BigInteger)
    test_id: Mapped[int] = mapped_column(BigInteger)
    test_name: Mapped[str] = mapped_column(String(300))
    candidate_email: Mapped[str] = mapped_column(String(320))
    candidate_name: Mapped[str] = mapped_column(String(200))
    test_url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # bot.imocha.Status values
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id"))
    candidate_points: Mapped[float | None] = mapped_column(Float)
    total_points: Mapped[float | None] = mapped_column(Float)
    percentage: Mapped[float | None] = mapped_column(Float)
    performance_category: Mapped[str | None] = mapped_column(String(100))
    report_url: Mapped[str | None] = mapped_column(Text)
    sections: Mapped[list[Any] | None]
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    sent_by: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(default=stamp)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    status_changed_at: Mapped[datetime] = mapped_column(default=stamp)
    last_checked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=stamp, onupdate=stamp)


class ApplicationInvitation(Base):
    """Links an application to the invitations that served it; exactly one link per application is live."""

    __tablename__ = "application_invitations"
    __table_args__ = (
        UniqueConstraint("application_id", "invitation_id"),
        Index(
            "uq_application_invitations_live",
            "application_id",
            "test_id",
            unique=True,
            sqlite_where=text("live"),
            postgresql_where=text("live"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"))
    test_id: Mapped[int] = mapped_column(BigInteger)
    live: Mapped[bool] = mapped_column(Boolean, default=True)
    reused: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_by: Mapped[str | None] = mapped_column(String(32))
    linked_at: Mapped[datetime] = mapped_column(default=stamp)


class SlackCard(Base):
    """Where an application's card lives in Slack (one per application)."""

    __tablename__ = "slack_cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), unique=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))  # None until chat.postMessage succeeded
    in_dm: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which process is posting or updating the card, until when (a claim, bot/runtime/claims.py): one
    # writer per card across replicas, without a row lock held across the Slack call.
    held_by: Mapped[str | None] = mapped_column(String(100))
    held_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=stamp)


class SlackLane(Base):
    """A Slack rate budget and, for a channel, the lane its outbox rows are delivered in.

    `key` is `team/channel` for a channel's lane and its chat.postMessage budget, `team/method` for a
    workspace-wide method budget (bot/slack/pacing.py). `tat` is the budget's next free slot (GCRA's
    theoretical arrival time, epoch seconds of the injected clock), shared by every replica. A lane is
    held by one process at a time (a claim), so a channel's rows go out one after another, in order.
    """

    __tablename__ = "slack_lanes"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    tat: Mapped[float] = mapped_column(Float)
    held_by: Mapped[str | None] = mapped_column(String(100))
    held_until: Mapped[datetime | None]


class OutboxMessage(Base):
    """A Slack write that must happen exactly once, retried until Slack accepts it."""

    __tablename__ = "slack_outbox"
    __table_args__ = (
        Index("ix_slack_outbox_due", "done_at", "next_attempt_at"),
        Index("ix_slack_outbox_lane", "lane", "done_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    # The Slack channel (or, for a DM, the user) it goes to: rows of one lane are delivered in order.
    lane: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=stamp)
    # Who is delivering it, until when (renewed while it works; bot/runtime/claims.py).
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=stamp)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("source", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    delivery_id: Mapped[str] = mapped_column(String(200))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(default=stamp)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_application", "application_id"), Index("ix_audit_log_created_at", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(64))  # a Slack user id, or "system", "ats", "imocha"
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id", ondelete="SET NULL"))
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id", ondelete="SET NULL"))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=stamp)


class EventDelivery(Base):
    """One outgoing event (an audit entry of a state change) and its delivery to EVENTS_WEBHOOK_URL."""

    __tablename__ = "event_deliveries"
    __table_args__ = (Index("ix_event_deliveries_pending", "done_at", "application_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id", ondelete="CASCADE"), unique=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=stamp)
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=stamp)


class Reminder(Base):
    __tablename__ = "reminders"
    __table_args__ = (UniqueConstraint("invitation_id", "kind", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # untouched | expiring
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD (UTC)
    sent_at: Mapped[datetime] = mapped_column(default=stamp)


class WeeklyDigest(Base):
    """One plan's digest for one week: the unique (plan, week) row is the once-a-week guarantee across replicas."""

    __tablename__ = "weekly_digests"
    __table_args__ = (UniqueConstraint("plan_id", "week"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(10))  # the Monday the week starts, YYYY-MM-DD in the workspace's zone
    channel_id: Mapped[str | None] = mapped_column(String(32))
    file_id: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=stamp)


class Lease(Base):
    """A named lease so that one replica at a time runs a singleton job (the pollers)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]


class GemApplication(Base):
    """The last Gem stage seen for a Gem application, to detect stage moves."""

    __tablename__ = "gem_applications"
    __table_args__ = (UniqueConstraint("workspace_id", "gem_application_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    gem_application_id: Mapped[str] = mapped_column(String(100))
    stage_id: Mapped[str | None] = mapped_column(String(100))
    seen_at: Mapped[datetime] = mapped_column(default=stamp)


class GemWriteback(Base):
    """A note to write to a Gem candidate's activity feed once per completed invitation."""

    __tablename__ = "gem_writebacks"
    __table_args__ = (UniqueConstraint("application_id", "invitation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # While claimed, next_attempt_at is the claim's expiry (renewed while it works; bot/runtime/claims.py).
    next_attempt_at: Mapped[datetime] = mapped_column(default=stamp)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class AtsWriteback(Base):
    """A decision (or its undo) to write back to the application's ATS: Greenhouse via Harvest, Gem as a note.

    One row per decision audit entry; an application's rows are written in id order (bot/ats/writeback.py).
    """

    __tablename__ = "ats_writebacks"
    __table_args__ = (Index("ix_ats_writebacks_pending", "done_at", "application_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_log.id", ondelete="CASCADE"), unique=True)
    target: Mapped[str] = mapped_column(String(20))  # greenhouse | gem
    action: Mapped[str] = mapped_column(String(20))  # advance | reject | undo_advance | undo_reject
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ats_writebacks.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(32))  # the Slack user who decided (or undid)
    # What the write needs and learnt: from_stage_id, to_stage_id, posted (a write was sent), round.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # While claimed, next_attempt_at is the claim's expiry (renewed while it works; bot/runtime/claims.py).
    next_attempt_at: Mapped[datetime] = mapped_column(default=stamp)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    done_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))  # written | already | cancelled | not_needed | failed
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=stamp)


# slack_sdk's OAuth tables (multi-workspace installs: bot tokens, encrypted by bot/slack/oauth.py, and the
# OAuth state). slack_sdk defines them and reads them through its own Table objects; they are here so
# that the migrations (0002) and the test schema create them like every other table.
SLACK_INSTALLATIONS = SQLAlchemyInstallationStore.build_installations_table(Base.metadata, "slack_installations")
SLACK_BOTS = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, "slack_bots")
SLACK_OAUTH_STATES = SQLAlchemyOAuthStateStore.build_oauth_states_table(Base.metadata, "slack_oauth_states")
