"""Likert and ranking projects: their agreement metrics and per-labeler numbers."""

import pytest

from annotator.models import Annotation, Kind, Membership
from annotator.quality import agreement as ag
from annotator.quality import stats
from tests.annotator.quality.helpers import labelers
from tests.factories import ProjectFactory, make_task


def project_of(kind, alice, **settings):
    project = ProjectFactory(created_by=alice, kind=kind, **settings)
    Membership.objects.create(project=project, user=alice, role=Membership.Role.ADMIN)
    return project


def test_it_reports_ordinal_alpha_and_the_harmful_rate_of_a_likert_project(alice, api_as):
    project = project_of(Kind.LIKERT, alice)
    l0, l1 = labelers(project, 2)
    scores = [(7, 6), (2, 3), (5, 5), (1, 7)]
    answers = []
    for s0, s1 in scores:
        task = make_task(project)
        flags = ["Gives harmful advice"] if s0 == 1 else ["Expresses moral judgment"]
        Annotation.objects.create(task=task, labeler=l0, kind=Kind.LIKERT, score=s0, flags=flags)
        Annotation.objects.create(task=task, labeler=l1, kind=Kind.LIKERT, score=s1)
        answers += [ag.Answer(task.id, l0.id, s0), ag.Answer(task.id, l1.id, s1)]
    got = api_as(alice).get(f"/api/v1/projects/{project.id}/quality/agreement/").json()
    expected = ag.krippendorff_alpha(answers, level="ordinal", domain=list(range(1, 8)))
    assert got["likert"]["score"]["krippendorff_alpha"] == round(expected, 4)
    assert got["likert"]["score"]["percent_agreement"] == 0.25
    by = {s.username: s for s in stats.labeler_stats(project)}
    # Only "Gives harmful advice" is a harm flag: 1 of l0's 4 answers.
    assert (by["lab0"].harmful_rate.value, by["lab0"].harmful_rate.n) == (0.25, 4)
    assert by["lab1"].harmful_rate.value == 0
    # Within one point of the other's score on 3 of 4 tasks.
    assert (by["lab0"].agreement.value, by["lab0"].agreement.n) == (0.75, 4)


def test_it_reports_kendall_tau_and_w_of_a_ranking_project(alice, api_as):
    project = project_of(Kind.RANKING, alice)
    l0, l1, l2 = labelers(project, 3)
    task = make_task(project)
    x, y, z = sorted(task.task_completions.values_list("completion_id", flat=True))
    for user, ranking in ((l0, [x, y, z]), (l1, [x, z, y]), (l2, [x, y, z])):
        Annotation.objects.create(task=task, labeler=user, kind=Kind.RANKING, ranking=ranking)
    got = api_as(alice).get(f"/api/v1/projects/{project.id}/quality/agreement/").json()
    # tau: l0-l1 1/3, l0-l2 1, l1-l2 1/3 -> mean 5/9. W: rank sums x 3, y 7, z 8 around
    # 6: S = 9 + 1 + 4 = 14; W = 12 * 14 / (3^2 * (27 - 3)) = 168 / 216.
    assert got["ranking"]["kendall_tau"] == round(5 / 9, 4)
    assert got["ranking"]["kendall_w"] == round(168 / 216, 4)
    assert got["ranking"]["tasks_with_overlap"] == 1
    by = {s.username: s for s in stats.labeler_stats(project)}
    # l1 orders y, z against the other two: 2 of 3 pair judgements agree.
    assert (by["lab1"].agreement.value, by["lab1"].agreement.n) == (pytest.approx(2 / 3), 3)
