import re
from io import StringIO

from django.core.management import call_command
from rest_framework.test import APIClient


def test_seed_demo_gives_a_newcomer_real_recommendations(db):
    out = StringIO()
    call_command("seed_demo", "--users", "60", stdout=out)
    secret = re.search(r"API key \(shown once\): (rk_\S+)", out.getvalue()).group(1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = client.post("/api/v1/recommendations", {"user_id": "user-1", "count": 5}, format="json").json()
    assert len(body["recommendations"]) == 5
    assert body["strategy"].startswith("personalized")
    call_command("seed_demo", "--users", "60", stdout=StringIO())  # runs again without failing
