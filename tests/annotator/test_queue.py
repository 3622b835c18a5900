from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.models import Assignment, Kind
from annotator.services import annotation_submit, task_claim_next, task_skip
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task


def labelers(project, n):
    users = [UserFactory() for _ in range(n)]
    for user in users:
        MembershipFactory(project=project, user=user)
    return users


def expire(assignment):
    Assignment.objects.filter(pk=assignment.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.django_db
class TestOrder:
    def test_it_serves_higher_priority_first(self):
        project = ProjectFactory()
        (user,) = labelers(project, 1)
        make_task(project, priority=0)
        urgent = make_task(project, priority=5)
        assert task_claim_next(project=project, labeler=user).task_id == urgent.id

    def test_it_serves_fewest_annotations_then_oldest(self):
        project = ProjectFactory(overlap=3)
        first, second, me = labelers(project, 3)
        older, newer = make_task(project), make_task(project)
        # `older` gets one annotation, so `newer` (zero annotations) comes first for `me`.
        lease = task_claim_next(project=project, labeler=first)
        assert lease.task_id == older.id
        annotation_submit(task=older, labeler=first, answer={"choice": "a"})
        assert task_claim_next(project=project, labeler=me).task_id == newer.id
        # Leases do not count as annotations: `newer` still has none, so it comes first.
        assert task_claim_next(project=project, labeler=second).task_id == newer.id

    def test_it_serves_the_oldest_among_equals(self):
        project = ProjectFactory()
        (user,) = labelers(project, 1)
        oldest = make_task(project)
        make_task(project)
        assert task_claim_next(project=project, labeler=user).task_id == oldest.id

    def test_it_resumes_the_live_lease_instead_of_handing_out_another(self):
        project = ProjectFactory()
        (user,) = labelers(project, 1)
        make_task(project), make_task(project)
        first = task_claim_next(project=project, labeler=user)
        again = task_claim_next(project=project, labeler=user)
        assert again.pk == first.pk
        assert Assignment.objects.filter(labeler=user).count() == 1


@pytest.mark.django_db
class TestNeverTwice:
    def test_it_never_returns_a_task_the_labeler_answered(self):
        project = ProjectFactory(overlap=2)
        (user,) = labelers(project, 1)
        task = make_task(project)
        task_claim_next(project=project, labeler=user)
        annotation_submit(task=task, labeler=user, answer={"choice": "b"})
        assert task_claim_next(project=project, labeler=user) is None

    def test_it_never_returns_a_skipped_task(self):
        project = ProjectFactory(overlap=2)
        (user,) = labelers(project, 1)
        task = make_task(project)
        task_claim_next(project=project, labeler=user)
        task_skip(task=task, labeler=user, reason="not my language")
        assert task_claim_next(project=project, labeler=user) is None
        assert Assignment.objects.get(labeler=user).skip_reason == "not my language"

    def test_a_skipped_task_still_goes_to_others(self):
        project = ProjectFactory()
        skipper, other = labelers(project, 2)
        task = make_task(project)
        task_claim_next(project=project, labeler=skipper)
        task_skip(task=task, labeler=skipper)
        assert task_claim_next(project=project, labeler=other).task_id == task.id


@pytest.mark.django_db
class TestOverlap:
    def test_it_hands_out_no_more_leases_than_the_overlap_needs(self):
        project = ProjectFactory(overlap=2)
        users = labelers(project, 3)
        task = make_task(project)
        got = [task_claim_next(project=project, labeler=u) for u in users]
        assert [a.task_id if a else None for a in got] == [task.id, task.id, None]

    def test_it_counts_annotations_against_the_overlap(self):
        project = ProjectFactory(overlap=1)
        first, second = labelers(project, 2)
        task = make_task(project)
        task_claim_next(project=project, labeler=first)
        annotation_submit(task=task, labeler=first, answer={"choice": "a"})
        task.refresh_from_db()
        assert task.is_complete and task.annotation_count == 1
        assert task_claim_next(project=project, labeler=second) is None


@pytest.mark.django_db
class TestLeases:
    def test_an_expired_lease_returns_the_task_to_the_queue(self):
        project = ProjectFactory(overlap=1)
        slow, fast = labelers(project, 2)
        task = make_task(project)
        lease = task_claim_next(project=project, labeler=slow)
        assert task_claim_next(project=project, labeler=fast) is None
        expire(lease)
        assert task_claim_next(project=project, labeler=fast).task_id == task.id

    def test_it_uses_the_project_lease_time(self):
        project = ProjectFactory(lease_seconds=90)
        (user,) = labelers(project, 1)
        make_task(project)
        before = timezone.now()
        lease = task_claim_next(project=project, labeler=user)
        assert timedelta(seconds=89) < lease.expires_at - before <= timedelta(seconds=91)

    def test_a_labeler_gets_their_own_expired_lease_back_in_the_same_order(self):
        project = ProjectFactory(kind=Kind.RANKING)
        (user,) = labelers(project, 1)
        make_task(project, k=4)
        lease = task_claim_next(project=project, labeler=user)
        expire(lease)
        again = task_claim_next(project=project, labeler=user)
        assert again.pk == lease.pk and again.shown_order == lease.shown_order
        assert again.expires_at > timezone.now()


@pytest.mark.django_db
def test_it_randomises_the_order_shown_per_lease():
    project = ProjectFactory(overlap=40)
    users = labelers(project, 40)
    task = make_task(project)
    orders = {tuple(task_claim_next(project=project, labeler=u).shown_order) for u in users}
    ids = sorted(task.completions.values_list("id", flat=True))
    # Both orders of the pair show up (the chance of 40 equal draws is 2 * 2**-40).
    assert orders == {tuple(ids), tuple(reversed(ids))}


@pytest.mark.django_db
def test_it_serves_only_the_asked_project():
    mine, other = ProjectFactory(), ProjectFactory()
    (user,) = labelers(mine, 1)
    make_task(other)
    assert task_claim_next(project=mine, labeler=user) is None
