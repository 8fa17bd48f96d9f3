"""A revocation seen by another server process: the cache of keys is shared (Redis), not per process."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apikeys.services import api_key_create, api_key_revoke

ROOT = Path(__file__).resolve().parents[2]

# Another process with the same settings, database and Redis: it authenticates each key it reads.
WORKER = textwrap.dedent(
    """
    import os, sys, json
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.test_settings"
    import django
    django.setup()
    from django.conf import settings
    from django.db import connection
    from rest_framework.test import APIRequestFactory
    from rest_framework.request import Request
    from rest_framework.exceptions import APIException
    from apikeys.authentication import ApiKeyAuthentication
    settings.DATABASES["default"]["NAME"] = sys.argv[1]
    connection.settings_dict["NAME"] = sys.argv[1]
    factory = APIRequestFactory()
    for line in sys.stdin:
        request = Request(factory.get("/", HTTP_X_API_KEY=line.strip()))
        try:
            ApiKeyAuthentication().authenticate(request)
            print(json.dumps({"ok": True, "queries": len(connection.queries)}), flush=True)
        except APIException as exc:
            print(json.dumps({"ok": False, "code": exc.status_code}), flush=True)
    """
)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_revocation_is_seen_by_another_process_at_once(world):
    api_key, secret = api_key_create(tenant=world.tenant, name="shared", permissions=["read"])
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, connection.settings_dict["NAME"]],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "REDIS_URL": settings.REDIS_URL},
    )
    try:

        def ask() -> dict:
            worker.stdin.write(secret + "\n")
            worker.stdin.flush()
            return json.loads(worker.stdout.readline())

        assert ask()["ok"] is True
        assert ask()["ok"] is True  # now held in the shared cache
        api_key_revoke(api_key=api_key, actor=None)
        assert ask() == {"ok": False, "code": 401}
    finally:
        worker.stdin.close()
        worker.wait(timeout=30)
