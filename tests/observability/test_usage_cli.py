"""`omnigate-gateway usage`: scopes, --since, --group-by, --json and the readable table, in real processes."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

from omnigate.store.database import Database
from omnigate.store.records import now_ms
from omnigate.store.usage import insert_usage
from tests.test_cli import cli, cli_json
from tests.usage.conftest import make_record

DAY = 86_400_000


async def seed(url: str, org_id: str, project_id: str) -> None:
    now = now_ms()
    records = [
        make_record(
            org_id=org_id,
            project_id=project_id,
            model="gpt-4o-mini",
            created_at=now - 1000,
            cost_micros=1_500_000,
        ),
        make_record(org_id=org_id, project_id=project_id, model="gpt-4o-mini", created_at=now - 2 * DAY),
        make_record(
            org_id=org_id,
            project_id=project_id,
            model="claude-sonnet-4-5",
            created_at=now - 2000,
            latency_ms=900,
        ),
        make_record(
            org_id="org_other", project_id="proj_other", model="gemini-2.5-flash", created_at=now - 3000
        ),
        make_record(org_id=org_id, project_id=project_id, model="gpt-4o", created_at=now - 40 * DAY),
    ]
    db = Database(url)
    await db.connect()
    try:
        await insert_usage(db, records)
    finally:
        await db.disconnect()


def test_usage_command(tmp_path: Path) -> None:
    org = cli_json(tmp_path, "org", "create", "Acme")
    project = cli_json(tmp_path, "project", "create", "--org", org["id"], "web")
    asyncio.run(seed(f"sqlite:///{tmp_path / 'omnigate.db'}", org["id"], project["id"]))

    grouped = cli_json(tmp_path, "usage", "--project", project["id"], "--since", "7d", "--group-by", "model")
    assert grouped["scope"] == {"type": "project", "id": project["id"]}
    assert [(g["key"], g["requests"]) for g in grouped["groups"]] == [
        ("gpt-4o-mini", 2),
        ("claude-sonnet-4-5", 1),
    ]
    assert grouped["totals"]["requests"] == 3 and grouped["timeseries"] == []

    table = cli(
        tmp_path, "usage", "--org", org["id"], "--since", "3d", "--group-by", "day"
    ).stdout.splitlines()
    assert table[0].startswith(f"usage of org {org['id']} from ")
    assert table[1].split() == [
        "DAY",
        "REQUESTS",
        "ERRORS",
        "INPUT_TOKENS",
        "OUTPUT_TOKENS",
        "COST_USD",
        "P50_MS",
        "P95_MS",
    ]
    rows = {line.split()[0]: line.split() for line in table[2:]}
    assert len(rows) in (4, 5) and rows["TOTAL"][1] == "3" and rows["TOTAL"][5] == "1.500900"
    days = [day for day in rows if day != "TOTAL"]
    assert all(datetime.date.fromisoformat(day) for day in days) and days == sorted(days)
    assert sum(int(rows[day][1]) for day in days) == 3
    assert ["0", "0", "0", "0", "0.000000", "-", "-"] in [
        rows[day][1:] for day in days
    ]  # a day without usage

    everything = cli(tmp_path, "usage", "--since", "2024-01-01T00:00:00Z").stdout
    assert "usage of gateway from 2024-01-01T00:00:00.000Z" in everything
    assert "requests" in everything and " 5\n" in everything and "latency_p95_ms" in everything

    bad = cli(tmp_path, "usage", "--since", "last tuesday", check=False)
    assert bad.returncode == 1 and "--since" in bad.stderr
    missing = cli(tmp_path, "usage", "--org", "org_nope", check=False)
    assert missing.returncode == 1 and "no organization 'org_nope'" in missing.stderr
    both = cli(tmp_path, "usage", "--org", org["id"], "--project", project["id"], check=False)
    assert both.returncode == 2 and "not allowed with" in both.stderr
