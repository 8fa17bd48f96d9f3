"""Fuzzing from the contract: schemathesis runs every operation of our OpenAPI schema against a live
gunicorn (production settings), as a tenant admin, a developer, a viewer, a read key and a write key.

Checks: no server error, status codes and bodies as the schema documents (the error envelope on every
error). Not checked: that every schema-valid body is accepted (`positive_data_acceptance`): API.md
itself refuses some, e.g. an interaction with an item that is not in the catalog is a 400."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.services import session_start
from apikeys.services import api_key_create
from recommendations.services import interactions_record, items_upsert
from tests.live import Gunicorn

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = 5


@pytest.fixture
def server(world, tmp_path):
    items_upsert(
        tenant=world.tenant,
        items=[{"id": f"i{n}", "title": f"Item {n}", "categories": ["c"]} for n in range(20)],
    )
    interactions_record(tenant=world.tenant, interactions=[{"user_id": "u", "item_id": "i1", "type": "view"}])
    live = Gunicorn(tmp_path, RATE_LIMIT_ENABLED="false").start()
    yield live
    live.stop()


def credential(world, who: str) -> str:
    if who.endswith("key"):
        permissions = ["read", "write"] if who == "write-key" else ["read"]
        return api_key_create(tenant=world.tenant, name=who, permissions=permissions)[1]
    user = {"admin": world.admin, "developer": world.developer, "viewer": world.viewer}[who]
    return session_start(user=user, ip=None, user_agent="fuzz")[1].access_token


@pytest.mark.parametrize("who", ["admin", "developer", "viewer", "read-key", "write-key"])
def test_every_operation_conforms_to_the_schema(world, server, tmp_path, who):
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [
            schemathesis,
            "run",
            f"{server.url}/api/schema/",
            "-H",
            f"Authorization: Bearer {credential(world, who)}",
            "-n",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "42",
            "--request-timeout",
            "20",
            "--phases",
            "examples,coverage,fuzzing",
            "--exclude-checks",
            "positive_data_acceptance",
            # These would end the credential's own session half-way through the run.
            "--exclude-path",
            "/api/v1/auth/logout-all",
            "--exclude-path",
            "/api/v1/auth/password",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert "Tested: " in summary
