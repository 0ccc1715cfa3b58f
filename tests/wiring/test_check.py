"""`imocha-bot check`: one readable line per thing an admin needs working, against the fakes over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from bot.ats.greenhouse import HarvestCredentials
from bot.runtime.app import build_runtime
from bot.runtime.check import run_check
from bot.runtime.config import Settings
from bot.workspace.settings import SetupInput
from store.db import make_engine, upgrade
from tests.conftest import migrations_head
from tests.fakes import gem as gem_fakes
from tests.fakes.gem import GOOD_GEM_KEY, FakeGem
from tests.fakes.greenhouse import CLIENT_ID, CLIENT_SECRET, FakeHarvest, fake_harvest  # noqa: F401 (fixture)
from tests.fakes.imocha import GOOD_KEY, FakeImocha
from tests.fakes.slack import FakeSlack
from tests.wiring.conftest import ADMIN, TEAM, settings_for

fake_gem = gem_fakes.fake_gem  # the fixture


@pytest.fixture
def configured(tmp_path: Path, slack: FakeSlack, fake_imocha: FakeImocha, fake_gem: FakeGem, fake_harvest: FakeHarvest) -> Settings:  # noqa: F811
    """A migrated SQLite database with one workspace whose iMocha and Gem keys and Harvest credentials were saved."""
    imocha, gem = fake_imocha, fake_gem
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(engine)
    settings = settings_for(
        engine, slack, imocha, gem_base_url=gem.url, greenhouse_harvest_url=fake_harvest.url, greenhouse_auth_url=fake_harvest.url
    )
    runtime = build_runtime(settings, engine=engine, with_scheduler=False)
    try:
        runtime.services.workspaces.save(
            TEAM,
            ADMIN,
            SetupInput(
                api_key=GOOD_KEY,
                default_channel_id=None,
                validity_days=7,
                gem_api_key=GOOD_GEM_KEY,
                harvest=HarvestCredentials(CLIENT_ID, CLIENT_SECRET),
            ),
        )
    finally:
        runtime.close()
    return settings


def test_check_reports_slack_database_migrations_and_every_key(configured: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    settings = configured

    assert run_check(settings) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok   Slack: bot") and TEAM in out[0]
    head = migrations_head()
    assert any(line.startswith(f"ok   Migrations: at {head}, latest {head}") for line in out)
    assert any(line.startswith(f"ok   iMocha key for {TEAM}: accepted;") and "tests" in line for line in out)
    assert any(line.startswith(f"ok   Gem ATS key for {TEAM}: accepted") for line in out)
    assert any(line.startswith(f"ok   Greenhouse Harvest credentials for {TEAM}: accepted") for line in out)
    assert out[-1] == "all checks passed"
    assert not {GOOD_KEY, GOOD_GEM_KEY, CLIENT_SECRET} & {word for line in out for word in line.split()}


def test_check_names_a_gem_key_gem_no_longer_accepts(configured: Settings, fake_gem: FakeGem, capsys: pytest.CaptureFixture[str]) -> None:
    settings = configured
    fake_gem.state.keys.clear()  # the key was revoked in Gem

    assert run_check(settings) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"FAIL Gem ATS key for {TEAM}: rejected by Gem: run /imocha setup again" in out
    assert any(line.startswith(f"ok   iMocha key for {TEAM}") for line in out)
    assert out[-1] == "1 check(s) failed"


def test_check_names_harvest_credentials_greenhouse_no_longer_accepts(
    configured: Settings,
    fake_harvest: FakeHarvest,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_harvest.state.credentials[CLIENT_ID]["secret"] = "rotated"  # the secret was regenerated in Greenhouse

    assert run_check(configured) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"FAIL Greenhouse Harvest credentials for {TEAM}: rejected by Greenhouse: run /imocha setup again" in out


def test_check_names_a_gem_it_cannot_reach(configured: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    settings = configured
    unreachable = settings.model_copy(update={"gem_base_url": "http://127.0.0.1:9"})

    assert run_check(unreachable) == 1
    assert f"FAIL Gem ATS key for {TEAM}: Gem unreachable (GemConnectionError)" in capsys.readouterr().out.splitlines()


def test_check_only_looks_it_writes_nothing_to_the_database(configured: Settings, fake_imocha: FakeImocha) -> None:
    def snapshot() -> list[tuple[object, ...]]:
        engine = make_engine(configured.database_url)
        with engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(text("SELECT * FROM workspaces ORDER BY id"))]
            rows += [tuple(row) for row in conn.execute(text("SELECT * FROM audit_log ORDER BY id"))]
        engine.dispose()
        return rows

    before = snapshot()
    calls = fake_imocha.state.count("/v3/tests", "GET")

    assert run_check(configured) == 0
    assert run_check(configured) == 0

    assert snapshot() == before  # the test list is not cached in the workspace row, nothing is audited
    assert fake_imocha.state.count("/v3/tests", "GET") == calls + 2  # each check asked iMocha itself
