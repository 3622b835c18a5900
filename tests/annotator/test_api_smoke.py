from annotator.models import Annotation


def test_it_labels_a_pairwise_task_over_the_api(project, alice, bob, api_as):
    admin = api_as(alice)
    body = b'{"prompt": "Hi?", "completions": ["Hello!", "Go away."]}\n'
    resp = admin.post(
        f"/api/v1/projects/{project.id}/import/", body, content_type="application/jsonl"
    )
    assert resp.status_code == 201, resp.content
    assert resp.json() == {"tasks_created": 1}

    labeler = api_as(bob)
    resp = labeler.post(f"/api/v1/projects/{project.id}/tasks/next/")
    assert resp.status_code == 200
    task = resp.json()
    first = task["completions"][0]["id"]
    resp = labeler.post(f"/api/v1/tasks/{task['id']}/annotations/", {"choice": "a"}, format="json")
    assert resp.status_code == 201, resp.content
    annotation = Annotation.objects.get()
    assert annotation.chosen_id == first
    assert labeler.post(f"/api/v1/projects/{project.id}/tasks/next/").status_code == 204
