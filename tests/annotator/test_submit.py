from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.exceptions import AlreadyAnswered, InvalidAnswer, LeaseLost, NotAssigned
from annotator.models import Annotation, Assignment, Kind
from annotator.services import annotation_submit, task_claim_next, task_skip
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task


def member(project):
    user = UserFactory()
    MembershipFactory(project=project, user=user)
    return user


def leased(project, **task_kwargs):
    user = member(project)
    task = make_task(project, **task_kwargs)
    lease = task_claim_next(project=project, labeler=user)
    assert lease.task_id == task.id
    return user, task, lease


@pytest.mark.django_db
class TestPairwise:
    @pytest.mark.parametrize("choice, winner", [("a", 0), ("b", 1)])
    def test_it_stores_completion_ids_not_screen_positions(self, choice, winner):
        project = ProjectFactory()
        user, task, lease = leased(project)
        annotation_submit(task=task, labeler=user, answer={"choice": choice, "strength": 2})
        annotation = Annotation.objects.get()
        assert annotation.chosen_id == lease.shown_order[winner]
        assert annotation.rejected_id == lease.shown_order[1 - winner]
        assert annotation.strength == 2
        assert annotation.shown_order == lease.shown_order

    @pytest.mark.parametrize("choice", ["tie", "both_bad"])
    def test_it_stores_tie_and_both_bad_without_a_winner(self, choice):
        project = ProjectFactory()
        user, task, _ = leased(project)
        annotation_submit(task=task, labeler=user, answer={"choice": choice})
        annotation = Annotation.objects.get()
        assert annotation.verdict == choice and annotation.chosen_id is None

    def test_it_refuses_tie_when_the_project_disallows_it(self):
        project = ProjectFactory(allow_tie=False)
        user, task, _ = leased(project)
        with pytest.raises(InvalidAnswer) as err:
            annotation_submit(task=task, labeler=user, answer={"choice": "tie"})
        assert err.value.field == "choice"
        assert not Annotation.objects.exists()

    @pytest.mark.parametrize(
        "answer, field",
        [
            ({"choice": "c"}, "choice"),
            ({}, "choice"),
            ({"choice": "a", "strength": 4}, "strength"),
            ({"choice": "tie", "strength": 1}, "strength"),
            ({"choice": "a", "notes": 5}, "notes"),
        ],
    )
    def test_it_names_the_bad_field(self, answer, field):
        project = ProjectFactory()
        user, task, _ = leased(project)
        with pytest.raises(InvalidAnswer) as err:
            annotation_submit(task=task, labeler=user, answer=answer)
        assert err.value.field == field


@pytest.mark.django_db
class TestLikert:
    def test_it_stores_score_flags_and_notes(self):
        project = ProjectFactory(kind=Kind.LIKERT, likert_points=5)
        user, task, _ = leased(project)
        flags = [project.flags[3], project.flags[0]]
        annotation_submit(
            task=task, labeler=user, answer={"score": 5, "flags": flags, "notes": "terse"}
        )
        annotation = Annotation.objects.get()
        # Flags are kept in the project's order, whatever order they were sent in.
        assert (annotation.score, annotation.flags) == (5, [project.flags[0], project.flags[3]])
        assert annotation.notes == "terse"

    @pytest.mark.parametrize("score", [0, 6, "3", True, None])
    def test_it_refuses_a_score_off_the_scale(self, score):
        project = ProjectFactory(kind=Kind.LIKERT, likert_points=5)
        user, task, _ = leased(project)
        with pytest.raises(InvalidAnswer) as err:
            annotation_submit(task=task, labeler=user, answer={"score": score})
        assert err.value.field == "score"

    def test_it_refuses_an_unknown_flag(self):
        project = ProjectFactory(kind=Kind.LIKERT)
        user, task, _ = leased(project)
        with pytest.raises(InvalidAnswer) as err:
            annotation_submit(task=task, labeler=user, answer={"score": 3, "flags": ["rude"]})
        assert err.value.field == "flags" and "rude" in err.value.message

    def test_it_scores_each_aspect(self):
        project = ProjectFactory(kind=Kind.LIKERT, aspects=["helpful", "honest", "harmless"])
        user, task, _ = leased(project)
        scores = {"helpful": 6, "honest": 7, "harmless": 2}
        annotation_submit(task=task, labeler=user, answer={"scores": scores})
        assert Annotation.objects.get().scores == scores

    def test_it_refuses_a_missing_aspect(self):
        project = ProjectFactory(kind=Kind.LIKERT, aspects=["helpful", "honest"])
        user, task, _ = leased(project)
        with pytest.raises(InvalidAnswer) as err:
            annotation_submit(task=task, labeler=user, answer={"scores": {"helpful": 3}})
        assert err.value.field == "scores.honest"


@pytest.mark.django_db
class TestRanking:
    def test_it_stores_the_order_of_completion_ids(self):
        project = ProjectFactory(kind=Kind.RANKING)
        user, task, lease = leased(project, k=4)
        ranking = list(reversed(lease.shown_order))
        annotation_submit(task=task, labeler=user, answer={"ranking": ranking})
        assert Annotation.objects.get().ranking == ranking

    @pytest.mark.parametrize("bad", ["partial", "repeat", "foreign"])
    def test_it_refuses_a_ranking_that_is_not_a_permutation(self, bad):
        project = ProjectFactory(kind=Kind.RANKING)
        user, task, lease = leased(project, k=3)
        order = lease.shown_order
        ranking = {
            "partial": order[:2],
            "repeat": [order[0], order[0], order[1]],
            "foreign": [order[0], order[1], 10**9],
        }[bad]
        with pytest.raises(InvalidAnswer) as err:
            annotation_submit(task=task, labeler=user, answer={"ranking": ranking})
        assert err.value.field == "ranking"


@pytest.mark.django_db
class TestIdempotence:
    def test_a_second_submit_creates_no_second_annotation(self):
        project = ProjectFactory(overlap=2)
        user, task, _ = leased(project)
        first = annotation_submit(task=task, labeler=user, answer={"choice": "a"})
        with pytest.raises(AlreadyAnswered) as err:
            annotation_submit(task=task, labeler=user, answer={"choice": "b"})
        assert err.value.annotation_id == first.annotation.id
        assert Annotation.objects.count() == 1
        task.refresh_from_db()
        assert task.annotation_count == 1

    def test_it_refuses_a_task_the_labeler_never_leased(self):
        project = ProjectFactory()
        user = member(project)
        task = make_task(project)
        with pytest.raises(NotAssigned):
            annotation_submit(task=task, labeler=user, answer={"choice": "a"})

    def test_it_refuses_a_skipped_task(self):
        project = ProjectFactory()
        user, task, _ = leased(project)
        task_skip(task=task, labeler=user)
        with pytest.raises(NotAssigned):
            annotation_submit(task=task, labeler=user, answer={"choice": "a"})


@pytest.mark.django_db
class TestLateSubmit:
    def expire(self, lease):
        Assignment.objects.filter(pk=lease.pk).update(
            expires_at=timezone.now() - timedelta(seconds=5)
        )

    def test_it_accepts_a_late_submit_while_the_overlap_is_open(self):
        project = ProjectFactory(overlap=1)
        user, task, lease = leased(project)
        self.expire(lease)
        result = annotation_submit(task=task, labeler=user, answer={"choice": "a"})
        assert result.late
        task.refresh_from_db()
        assert task.is_complete

    def test_it_refuses_a_late_submit_once_others_covered_the_task(self):
        project = ProjectFactory(overlap=1)
        user, task, lease = leased(project)
        self.expire(lease)
        other = member(project)
        assert task_claim_next(project=project, labeler=other).task_id == task.id
        with pytest.raises(LeaseLost) as err:
            annotation_submit(task=task, labeler=user, answer={"choice": "a"})
        assert "not stored" in err.value.message
        assert not Annotation.objects.exists()
        # The other labeler's submit still goes through.
        annotation_submit(task=task, labeler=other, answer={"choice": "b"})
        task.refresh_from_db()
        assert task.annotation_count == 1
