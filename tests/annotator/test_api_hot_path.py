"""The labeling API's two hot calls (next task, submit) stay within their query budgets.

bench/labeling_load.py measures their speed; these budgets guard against the N+1s and stray
lookups that would quietly slow them down. Counted with token auth, as scripts call them,
and with the submit's on-commit work (the trainer's loop check) included.
"""

import pytest

from tests.conftest import api_client_for
from tests.factories import make_task

# token + user, membership + project, [transaction], labeler lock, resume check, candidate,
# the task's content (it draws the shown order, then is served), conditional insert, [end]
NEXT_MAX_QUERIES = 9
# token + user, task + project + membership, simulated?, [transaction], task lock + lease +
# earlier answer, insert, lease update, task update, mark the loop due (trainer), [end]
SUBMIT_MAX_QUERIES = 10


@pytest.mark.django_db
@pytest.mark.parametrize("k", [2, 3, 9])
def test_next_and_submit_stay_within_their_query_budgets(
    project, bob, django_assert_max_num_queries, django_capture_on_commit_callbacks, k
):
    project.kind = "ranking" if k > 2 else "pairwise"
    project.save()
    for _ in range(3):
        make_task(project, k=k)
    client = api_client_for(bob)
    with django_assert_max_num_queries(NEXT_MAX_QUERIES):
        served = client.post(f"/api/v1/projects/{project.id}/tasks/next/")
    assert served.status_code == 200
    task = served.json()
    assert len(task["completions"]) == k
    answer = {"ranking": [c["id"] for c in task["completions"]]} if k > 2 else {"choice": "a"}
    with django_assert_max_num_queries(SUBMIT_MAX_QUERIES):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            answered = client.post(
                f"/api/v1/tasks/{task['id']}/annotations/", answer, format="json"
            )
    assert answered.status_code == 201, answered.content
    assert callbacks == []  # no loop here: nothing to send after the commit
    # Resuming a held lease is cheaper still than taking a new one.
    with django_assert_max_num_queries(NEXT_MAX_QUERIES):
        first = client.post(f"/api/v1/projects/{project.id}/tasks/next/")
    with django_assert_max_num_queries(NEXT_MAX_QUERIES - 2):
        again = client.post(f"/api/v1/projects/{project.id}/tasks/next/")
    assert again.json()["id"] == first.json()["id"] != task["id"]
