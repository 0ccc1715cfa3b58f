"""Small query helpers over a Session; they never commit (the caller owns the transaction)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import (
    Application,
    ApplicationInvitation,
    AuditEntry,
    Base,
    Candidate,
    Invitation,
    Lease,
    Plan,
    SlackCard,
    Workspace,
)


def insert_ignore(session: Session, model: type[Base], values: dict[str, Any], conflict: Sequence[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when a row was inserted."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    table: Any = model.__table__
    stmt = module.insert(model).values(**values).on_conflict_do_nothing(index_elements=list(conflict)).returning(*table.primary_key.columns)
    # RETURNING, not rowcount: psycopg reports a rowcount for DO NOTHING inserts that inserted nothing.
    return session.execute(stmt).first() is not None


def insert_many_ignore(
    session: Session, model: type[Base], rows: list[dict[str, Any]], conflict: Sequence[str], returning: Any
) -> list[Any]:
    """A multi-row INSERT ... ON CONFLICT DO NOTHING; returns `returning` for the rows inserted."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(model).values(rows).on_conflict_do_nothing(index_elements=list(conflict)).returning(returning)
    return list(session.scalars(stmt))


def workspace_by_team(session: Session, team_id: str) -> Workspace | None:
    return session.scalars(select(Workspace).where(Workspace.team_id == team_id)).one_or_none()


def ensure_workspace(session: Session, team_id: str) -> Workspace:
    insert_ignore(session, Workspace, {"team_id": team_id, "active": True}, ["team_id"])
    workspace = workspace_by_team(session, team_id)
    assert workspace is not None
    return workspace


def plans_for(session: Session, workspace_id: int) -> list[Plan]:
    return list(session.scalars(select(Plan).where(Plan.workspace_id == workspace_id).order_by(Plan.job_label, Plan.stage_label)))


def find_plan(session: Session, workspace_id: int, job_keys: Iterable[str], stage_key: str) -> Plan | None:
    keys = [key for key in job_keys if key]
    if not keys:
        return None
    return session.scalars(
        select(Plan)
        .where(Plan.workspace_id == workspace_id, Plan.job_key.in_(keys), Plan.stage_key == stage_key)
        .order_by(Plan.id)
        .limit(1)
    ).first()


def candidate_by_email(session: Session, workspace_id: int, email: str) -> Candidate | None:
    return session.scalars(select(Candidate).where(Candidate.workspace_id == workspace_id, Candidate.email == email)).one_or_none()


def application(session: Session, workspace_id: int, application_id: int, *, lock: bool = False) -> Application | None:
    stmt: Select[Any] = select(Application).where(Application.id == application_id, Application.workspace_id == workspace_id)
    if lock:
        stmt = stmt.with_for_update(of=Application)
    found: Application | None = session.scalars(stmt).unique().one_or_none()
    return found


def compare_and_set_status(session: Session, application_id: int, expected: Iterable[str], new: str, **values: Any) -> bool:
    """Move an application to `new` only if it is in one of `expected`; the database decides the race."""
    result: Any = session.execute(
        update(Application)
        .where(Application.id == application_id, Application.status.in_(list(expected)))
        .values(status=new, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def live_links(session: Session, invitation_ids: Iterable[int]) -> list[ApplicationInvitation]:
    ids = list(invitation_ids)
    if not ids:
        return []
    return list(
        session.scalars(
            select(ApplicationInvitation).where(ApplicationInvitation.invitation_id.in_(ids), ApplicationInvitation.live.is_(True))
        )
    )


def invitations_by_imocha_ids(session: Session, workspace_id: int, imocha_ids: Iterable[int], *, lock: bool = False) -> list[Invitation]:
    ids = sorted(set(imocha_ids))
    found: list[Invitation] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        stmt = select(Invitation).where(Invitation.workspace_id == workspace_id, Invitation.imocha_id.in_(chunk))
        if lock:
            stmt = stmt.with_for_update()
        found.extend(session.scalars(stmt))
    return found


def card_for(session: Session, application_id: int) -> SlackCard | None:
    return session.scalars(select(SlackCard).where(SlackCard.application_id == application_id)).one_or_none()


def audit(
    session: Session,
    *,
    workspace_id: int,
    actor: str,
    action: str,
    outcome: str = "ok",
    application_id: int | None = None,
    invitation_id: int | None = None,
    detail: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        workspace_id=workspace_id,
        actor=actor,
        action=action,
        outcome=outcome,
        application_id=application_id,
        invitation_id=invitation_id,
        detail=detail,
    )
    session.add(entry)
    return entry


def audit_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert audit entries (the keyword arguments of `audit`, all with the same keys) in one executemany."""
    if rows:
        session.execute(insert(AuditEntry), rows)


def audit_for_applications(session: Session, application_ids: Iterable[int]) -> list[AuditEntry]:
    ids = list(application_ids)
    if not ids:
        return []
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.application_id.in_(ids)).order_by(AuditEntry.created_at, AuditEntry.id))
    )


def acquire_lease(session: Session, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Take or renew a named lease; True when `holder` has it until `until`."""
    insert_ignore(session, Lease, {"name": name, "holder": holder, "expires_at": until}, ["name"])
    result: Any = session.execute(
        update(Lease)
        .where(Lease.name == name, and_((Lease.holder == holder) | (Lease.expires_at <= now)))
        .values(holder=holder, expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def release_lease(session: Session, name: str, holder: str, now: datetime) -> None:
    """Give a lease up early (on shutdown) so another replica can take it at once."""
    session.execute(
        update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=now).execution_options(synchronize_session=False)
    )


def find_plan_by_id(session: Session, workspace_id: int, plan_id: int) -> Plan | None:
    plan = session.get(Plan, plan_id)
    return plan if plan is not None and plan.workspace_id == workspace_id else None


def find_plan_for_job(session: Session, workspace_id: int, job_key: str) -> Plan | None:
    return session.scalars(
        select(Plan).where(Plan.workspace_id == workspace_id, Plan.job_key == job_key).order_by(Plan.id).limit(1)
    ).first()
