"""Forms refuse text a database cannot store with a message by the field, not a 500: JSON typed
into a settings box goes through webapp/safejson.py as the API's bodies do."""

from unittest import mock

import pytest

from tests.trainer.loop.test_views import policy_model, settings_url, valid_settings
from trainer.models import LoopPolicy

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('{"model_name_or_path": "m\\u0000"}', "NUL character"),
        ('{"model_name_or_path": "\\ud800"}', "unpaired surrogate"),
        ('{"x": ' + "[" * 2000 + "]" * 2000 + "}", "nested deeper than 32"),
    ],
    ids=["nul", "surrogate", "deep"],
)
def test_the_loop_settings_form_refuses_json_it_cannot_store(client, alice, project, value, error):
    base = policy_model(project, "base")
    client.force_login(alice)
    with mock.patch("trainer.tasks.advance_loop.delay"):
        resp = client.post(settings_url(project), valid_settings(base, reward_config=value))
    assert resp.status_code == 200
    page = resp.content.decode()
    assert "Not saved." in page and error in page
    assert not LoopPolicy.objects.exists()
