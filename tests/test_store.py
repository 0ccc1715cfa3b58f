"""The store on real SQLite and PostgreSQL: migrations, round trips, and the constraints that stop duplicates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import repos
from store.db import current_revision, head_revision, make_engine, upgrade
from store.models import (
    Application,
    ApplicationInvitation,
    Candidate,
    Invitation,
    Job,
    SlackCard,
    WebhookDelivery,
    Workspace,
)


def _world(session: Session) -> tuple[Workspace, Application]:
    ws = repos.ensure_workspace(session, "T1")
    cand = Candidate(workspace_id=ws.id, name="Ada", email="ada@example.com")
    job = Job(workspace_id=ws.id, external_id="job-1", name="Backend")
    session.add_all([cand, job])
    session.flush()
    app = Application(
        workspace_id=ws.id,
        external_id="app-1",
        source="ats",
        stage_key="imocha assessment",
        stage_name="iMocha assessment",
        candidate_id=cand.id,
        job_id=job.id,
        test_id=1001,
        test_name="Python",
    )
    session.add(app)
    session.flush()
    return ws, app


def test_migrations_build_the_schema_from_nothing(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    assert {"workspaces", "applications", "invitations", "slack_outbox", "audit_log"} <= set(inspect(engine).get_table_names())


def test_the_migrations_build_exactly_the_models_schema(tmp_path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from store.models import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
    assert {"slack_installations", "slack_bots", "slack_oauth_states"} <= set(inspect(engine).get_table_names())


def test_upgrading_a_database_whose_oauth_tables_slack_sdk_made_at_start_up(tmp_path) -> None:
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine, "0001")
    SQLAlchemyInstallationStore(client_id="C1", engine=engine).create_tables()  # what earlier releases did
    SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine).create_tables()
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)


def test_a_round_trip_keeps_timezone_aware_utc_datetimes(session_factory: sessionmaker[Session]) -> None:
    moment = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)
    with session_factory.begin() as session:
        ws, _app = _world(session)
        session.add(
            Invitation(
                workspace_id=ws.id,
                imocha_id=3100001,
                test_id=1001,
                test_name="Python",
                candidate_email="ada@example.com",
                candidate_name="Ada",
                test_url="https://x/take/1",
                status="pending",
                valid_until=moment,
            )
        )
    with session_factory() as session:
        inv = session.scalars(select(Invitation)).one()
        assert inv.valid_until == moment and inv.valid_until.tzinfo is not None


def test_one_application_per_stage_is_a_database_constraint(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        ws, app = _world(session)
        ids = (app.candidate_id, app.job_id)
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(
            Application(
                workspace_id=ws.id,
                external_id="app-1",
                source="ats",
                stage_key="imocha assessment",
                stage_name="x",
                candidate_id=ids[0],
                job_id=ids[1],
                test_id=1,
                test_name="t",
            )
        )


def test_one_card_per_application_and_one_row_per_webhook_delivery(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        _ws, app = _world(session)
        session.add(SlackCard(application_id=app.id, channel_id="C1"))
        session.add(WebhookDelivery(source="ats", delivery_id="evt_1"))
        app_id = app.id
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(SlackCard(application_id=app_id, channel_id="C2"))
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(WebhookDelivery(source="ats", delivery_id="evt_1"))
    with session_factory.begin() as session:
        assert not repos.insert_ignore(session, WebhookDelivery, {"source": "ats", "delivery_id": "evt_1"}, ["source", "delivery_id"])
        assert repos.insert_ignore(session, WebhookDelivery, {"source": "ats", "delivery_id": "evt_2"}, ["source", "delivery_id"])


def test_one_live_invitation_per_application_and_test(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        ws, app = _world(session)
        invs = [
            Invitation(
                workspace_id=ws.id,
                imocha_id=3100000 + i,
                test_id=1001,
                test_name="Python",
                candidate_email="ada@example.com",
                candidate_name="Ada",
                test_url="u",
                status="pending",
            )
            for i in (1, 2)
        ]
        session.add_all(invs)
        session.flush()
        session.add(ApplicationInvitation(application_id=app.id, invitation_id=invs[0].id, test_id=1001, live=True))
        ids = (app.id, invs[1].id)
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(ApplicationInvitation(application_id=ids[0], invitation_id=ids[1], test_id=1001, live=True))
    with session_factory.begin() as session:  # a second, non-live link is history and is fine
        session.add(ApplicationInvitation(application_id=ids[0], invitation_id=ids[1], test_id=1001, live=False))


def test_compare_and_set_lets_exactly_one_writer_win(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        _ws, app = _world(session)
        app_id = app.id
    with session_factory.begin() as session:
        assert repos.compare_and_set_status(session, app_id, ["needs_sending"], "sending")
    with session_factory.begin() as session:
        assert not repos.compare_and_set_status(session, app_id, ["needs_sending"], "sending")


def test_a_lease_is_held_by_one_holder_until_it_expires(engine: Engine, session_factory: sessionmaker[Session]) -> None:
    t0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    t1 = datetime(2026, 11, 26, 9, 1, tzinfo=UTC)
    t2 = datetime(2026, 11, 26, 9, 3, tzinfo=UTC)
    with session_factory.begin() as s:
        assert repos.acquire_lease(s, "poll", "a", t0, t1)
    with session_factory.begin() as s:
        assert not repos.acquire_lease(s, "poll", "b", t0, t1)
    with session_factory.begin() as s:
        assert repos.acquire_lease(s, "poll", "b", t2, t2.replace(minute=5))
