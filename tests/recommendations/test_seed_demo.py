import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from rest_framework.test import APIClient

from tenants.models import Tenant


@override_settings(DEBUG=False)
def test_seed_demo_refuses_to_run_outside_development(db):
    # Its admin's password is in the source: never on a server.
    with pytest.raises(CommandError, match="DEBUG on only"):
        call_command("seed_demo", stdout=StringIO())
    assert not Tenant.objects.filter(slug="demo").exists()


@override_settings(DEBUG=True)
def test_seed_demo_gives_a_newcomer_real_recommendations(db):
    out = StringIO()
    call_command("seed_demo", "--users", "60", stdout=out)
    secret = re.search(r"API key \(shown once\): (rk_\S+)", out.getvalue()).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = client.post("/api/v1/recommendations", {"user_id": "user-1", "count": 5}, format="json").json()
    assert len(body["recommendations"]) == 5
    assert body["strategy"].startswith("personalized")
    assert "curl -s http://127.0.0.1:8000/api/v1/recommendations" in out.getvalue()
    again = StringIO()
    call_command("seed_demo", "--users", "60", "--port", "9000", stdout=again)  # runs again without failing
    assert "curl -s http://127.0.0.1:9000/api/v1/recommendations" in again.getvalue()
