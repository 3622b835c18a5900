"""The labeler statistics pages: who may see them, what they show, how many queries."""

import pytest
from django.urls import reverse

from annotator.quality import selectors, stats
from tests.annotator.quality.helpers import answer, labelers, pairwise_tasks


@pytest.fixture
def labeled(project):
    """4 tasks, 3 labelers: l0 and l1 always agree, l2 always disagrees and always takes
    the left side; l0 is slow on one task and skips a fifth one."""
    tasks = pairwise_tasks(project, 5)
    l0, l1, l2 = labelers(project, 3)
    for i, task in enumerate(tasks[:4]):
        ids = sorted(task.task_completions.values_list("completion_id", flat=True))
        right = "first" if i % 2 == 0 else "second"
        wrong = "second" if right == "first" else "first"
        answer(task, l0, right, seconds=10 if i else 30)
        answer(task, l1, right, seconds=4)
        # l2 picks `wrong`, shown on the left.
        answer(task, l2, wrong, left=ids[0] if wrong == "first" else ids[1], seconds=1)
    answer(tasks[4], l0, None, skip=True)
    return project, tasks, (l0, l1, l2)


def url(project):
    return reverse("quality_labelers", args=[project.id])


def test_it_shows_the_stats_to_admins_only(client, labeled, bob, charlie):
    project, *_ = labeled
    client.force_login(bob)
    assert client.get(url(project)).status_code == 403
    client.force_login(charlie)
    assert client.get(url(project)).status_code == 404


def test_it_computes_each_labelers_numbers(labeled):
    project, tasks, (l0, l1, l2) = labeled
    by = {s.username: s for s in stats.labeler_stats(project)}
    assert by["lab0"].tasks_done == 4
    assert by["lab0"].median_seconds == 10.0
    assert by["lab0"].skip_rate == pytest.approx(1 / 5)
    assert by["lab1"].skip_rate == 0
    # l0's consensus on each task is l1 alone... l1 agrees, l2 disagrees: others split for
    # l0 (l1 right, l2 wrong): no consensus; so for l0 and l1 nothing is compared, while l2
    # is compared with l0+l1 (both right) and never agrees.
    assert by["lab2"].agreement.value == 0 and by["lab2"].agreement.n == 4
    assert by["lab0"].agreement.n == 0
    assert by["lab2"].left_share.value == 1.0
    lo, hi = stats.wilson(4, 4)
    assert (by["lab2"].left_share.low, by["lab2"].left_share.high) == (lo, hi)
    assert by["lab2"].reliability < 0.5 < by["lab0"].reliability


def test_it_counts_labels_per_day_and_marks_simulated_labelers(labeled):
    from django.utils import timezone

    from annotator.models import Annotation

    project, _, (l0, *_rest) = labeled
    Annotation.objects.filter(labeler=l0).update(labeler_kind="simulated")
    numbers = stats.page_numbers(project)
    assert numbers["per_day"] == [(timezone.now().date().isoformat(), 12)]
    by = {s.username: s for s in numbers["rows"]}
    assert by["lab0"].simulated and not by["lab1"].simulated


def test_it_scores_gold_answers(labeled):
    project, tasks, _ = labeled
    task = tasks[0]
    first = min(task.task_completions.values_list("completion_id", flat=True))
    from annotator.models import Completion

    task.gold = {"chosen": Completion.objects.get(pk=first).text}
    task.save()
    by = {s.username: s for s in stats.labeler_stats(project)}
    assert (by["lab0"].gold.value, by["lab0"].gold.n) == (1.0, 1)
    assert (by["lab2"].gold.value, by["lab2"].gold.n) == (0.0, 1)


def test_it_renders_sorted_by_a_column_and_escapes_names(client, labeled, alice):
    project, _, (l0, *_rest) = labeled
    l0.username = "<b>lab0</b>"
    l0.save()
    client.force_login(alice)
    html = client.get(url(project), {"sort": "tasks", "dir": "desc"}).content.decode()
    assert "&lt;b&gt;lab0&lt;/b&gt;" in html and "<b>lab0" not in html
    table = html[html.index('id="labeler-stats"') :]
    assert table.index("lab0") < table.index("lab1")  # 4 tasks each; ties keep name order
    assert 'aria-sort="descending"' in html
    html = client.get(url(project), {"sort": "reliability"}).content.decode()
    table = html[html.index('id="labeler-stats"') :]
    assert table.index("lab2") < table.index("lab1")
    admin = client.get(reverse("project_admin", args=[project.id])).content.decode()
    assert url(project) in admin


def test_it_marks_an_ai_judges_account_with_a_badge_and_no_person(client, labeled, alice):
    from django.contrib.auth.models import Group

    from annotator.judging import AI_GROUP

    project, _, (l0, l1, l2) = labeled
    l2.groups.add(Group.objects.get_or_create(name=AI_GROUP)[0])
    client.force_login(alice)
    html = client.get(url(project)).content.decode()
    rows = html[html.index('id="labeler-stats"') :].split("<tr>")
    row = {lab.username: next(r for r in rows if f">{lab.username}</a>" in r) for lab in labeled[2]}
    assert '<span class="badge badge-ai" title="An AI judge">AI</span>' in row[l2.username]
    assert "badge-ai" not in row[l0.username] and "badge-ai" not in row[l1.username]
    assert ">AI</span>" not in row[l0.username]
    by = {s.username: s for s in stats.labeler_stats(project)}
    assert by[l2.username].ai and not by[l0.username].ai


def test_it_shows_one_labelers_answers_beside_the_others(client, labeled, alice):
    project, _, (l0, l1, l2) = labeled
    client.force_login(alice)
    resp = client.get(reverse("quality_labeler", args=[project.id, l2.id]))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert html.count("lab0:") == 4 and html.count("lab1:") == 4
    missing = reverse("quality_labeler", args=[project.id, 999999])
    assert client.get(missing).status_code == 404


def test_it_reads_the_page_in_a_fixed_number_of_queries(
    client, labeled, alice, django_assert_max_num_queries
):
    project, *_ = labeled
    client.force_login(alice)
    with django_assert_max_num_queries(14):  # cold: every number computed
        assert client.get(url(project)).status_code == 200
    with django_assert_max_num_queries(6):  # warm: nothing changed, the numbers are cached
        assert client.get(url(project)).status_code == 200
    more = pairwise_tasks(project, 5)
    for user in labelers(project, 5, prefix="extra"):
        for task in more:
            answer(task, user, "first")
    with django_assert_max_num_queries(14):
        assert client.get(url(project)).status_code == 200
    l0 = labeled[2][0]
    detail = reverse("quality_labeler", args=[project.id, l0.id])
    with django_assert_max_num_queries(16):
        assert client.get(detail).status_code == 200


def test_it_caches_the_fit_until_an_answer_arrives(labeled):
    project, tasks, (l0, *_rest) = labeled
    first = selectors.project_fit(project)
    assert selectors.project_fit(project) is not None
    answer(pairwise_tasks(project, 1)[0], l0, "first")
    again = selectors.project_fit(project)
    assert len(again.tasks) == len(first.tasks) + 1


def test_it_recomputes_the_numbers_after_an_answer_is_edited(labeled):
    """An edit keeps the answer's id and the project's count of answers: the cached numbers
    must not outlive it (the latest revision is part of what the cache is keyed by)."""
    from annotator.models import Annotation
    from annotator.services import annotation_edit

    project, tasks, (l0, l1, l2) = labeled
    before = {s.username: s for s in stats.page_numbers(project)["rows"]}
    assert before["lab2"].agreement.value == 0
    mine = Annotation.objects.get(task=tasks[0], labeler=l2)
    right = Annotation.objects.get(task=tasks[0], labeler=l0)
    shown = mine.shown_order
    side = "a" if right.chosen_id == shown[0] else "b"
    annotation_edit(annotation_id=mine.id, user=l2, answer={"choice": side})
    after = {s.username: s for s in stats.page_numbers(project)["rows"]}
    assert after["lab2"].agreement.value == pytest.approx(1 / 4)
