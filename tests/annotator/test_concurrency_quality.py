"""The queue's invariants hold with gold tasks and swap repeats on, under concurrency
(PostgreSQL, threads, two tabs per labeler): no ordinary task over its overlap, no task leased
twice to one labeler, each gold task and each repeat served at most once to a labeler."""

from collections import Counter

import pytest
from django.db.models import Count

from annotator import services
from annotator.exceptions import AlreadyAnswered
from annotator.models import Annotation, Assignment, Repeat, Task
from tests.annotator.test_concurrency import _project_with_labelers, _run_threads, postgres_only
from tests.factories import make_task

__all__ = ["postgres_only"]  # the fixture, used by name


def _label_two_tabs(trace, project, user) -> None:
    while True:
        lease = services.task_claim_next(project=project, labeler=user)
        if lease is None:
            return
        task = Task.objects.select_related("project").get(id=lease.task_id)
        try:
            result = services.annotation_submit(task=task, labeler=user, answer={"choice": "a"})
        except AlreadyAnswered:  # the other tab answered the lease both were shown
            continue
        trace.leases.append((task.id, result.repeat))


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_queue_exact_with_gold_and_repeats_on(postgres_only):
    project, users = _project_with_labelers(
        overlap=2, labelers=6, tasks=24, gold_every=3, repeat_share=0.3
    )
    golds = []
    for _ in range(6):
        task = make_task(project)
        task.gold, task.is_complete = {"verdict": "tie"}, True
        task.save()
        golds.append(task.id)
    traces = _run_threads(_label_two_tabs, [(project, u) for u in users for _tab in range(2)])

    assert [e for t in traces for e in t.errors] == []
    ordinary = Task.objects.filter(project=project, gold__isnull=True)
    counts = ordinary.annotate(n=Count("annotations")).values_list("n", flat=True)
    assert sorted(set(counts)) == [2]  # every ordinary task answered exactly `overlap` times
    assert not ordinary.filter(is_complete=False).exists()
    # One lease per (task, labeler), gold tasks included (never twice to one labeler).
    pairs = Counter(
        Assignment.objects.filter(task__project=project).values_list("task_id", "labeler_id")
    )
    assert max(pairs.values()) == 1
    served_gold = Annotation.objects.filter(task_id__in=golds).count()
    assert served_gold >= len(users)  # gold reached every labeler at least once
    # Each labeler answered every repeat of theirs at most once, and only their own tasks.
    answered = Repeat.objects.filter(project=project, status=Repeat.Status.ANSWERED)
    for repeat in answered:
        assert repeat.annotation.labeler_id == repeat.labeler_id
    repeats_seen = sum(1 for t in traces for _task, was_repeat in t.leases if was_repeat)
    assert repeats_seen == answered.count()
