"""Judges on Likert and ranking tasks, on the app side: verdicts stored as AI annotations (a
score with its flags; a ranking in completion ids), an inconsistent ranking sent to people,
bad answers refused whole, trust measured per task kind, and judging jobs run by the
worker's runner in a child process against the simulated endpoint."""

import pytest
from django.urls import reverse

from annotator.exceptions import ServiceError
from annotator.judging import tasks_for_judging
from annotator.models import Annotation, JudgeVerdict, Kind, LabelerKind, Membership, Task
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, ProjectFactory, make_task
from tests.judge_server import judge_server
from trainer import runner
from trainer.judging import services as judging
from trainer.models import ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db
BEST, MID, WORST = "a happy garden with bright music", "a happy reply", "a plain reply"


def kind_project(kind, alice, bob, **fields):
    project = ProjectFactory(created_by=alice, kind=kind, **fields)
    MembershipFactory(project=project, user=alice, role=Membership.Role.ADMIN)
    MembershipFactory(project=project, user=bob, role=Membership.Role.LABELER)
    return project


def make_judge(project, name="j1", **fields):
    fields = {
        "base_url": "http://127.0.0.1:9/v1",
        "model": "rule=target-words",
        "min_calibration_tasks": 0,
        "audit_share": 0.0,
        **fields,
    }
    return judging.judge_create(project=project, name=name, **fields)


def ids(task):
    return list(task.task_completions.order_by("position").values_list("completion_id", flat=True))


def text_ids(task):
    return dict(task.task_completions.values_list("completion__text", "completion_id"))


def test_a_likert_judging_job_scores_each_response_once(alice, bob, tmp_path, settings):
    settings.PREFLOOP_MODELS_DIR = str(tmp_path)
    project = kind_project(Kind.LIKERT, alice, bob, likert_points=5)
    best, worst = make_task(project, texts=[BEST]), make_task(project, texts=[WORST])
    with judge_server() as url:
        judge = make_judge(project, base_url=url)
        job = judging.judge_run(judge=judge)
        assert runner.job_run(job_id=job.id, worker="test") == TrainingJob.Status.SUCCEEDED
    job.refresh_from_db()
    assert job.metrics[-1]["judged"] == 2 and job.metrics[-1]["calls"] == 2  # asked once each
    scores = dict(
        Annotation.objects.filter(labeler_kind=LabelerKind.AI).values_list("task_id", "score")
    )
    assert scores[worst.id] == 1 and 1 < scores[best.id] <= 5
    verdict = JudgeVerdict.objects.get(task=best)
    assert verdict.consistent and verdict.second == "" and verdict.first == str(scores[best.id])
    assert Task.objects.filter(is_complete=True).count() == 2


def test_a_ranking_judging_job_stores_rankings_in_completion_ids(alice, bob, tmp_path, settings):
    settings.PREFLOOP_MODELS_DIR = str(tmp_path)
    project = kind_project(Kind.RANKING, alice, bob)
    tasks = [make_task(project, texts=[MID, WORST, BEST]) for _ in range(3)]
    with judge_server() as url:
        judge = make_judge(project, base_url=url)
        job = judging.judge_run(judge=judge, config={"batch_size": 2})
        assert runner.job_run(job_id=job.id, worker="test") == TrainingJob.Status.SUCCEEDED
    for task in tasks:
        by_text = text_ids(task)
        annotation = Annotation.objects.get(task=task, labeler_kind=LabelerKind.AI)
        assert annotation.ranking == [by_text[BEST], by_text[MID], by_text[WORST]]
    assert JudgeVerdict.objects.filter(consistent=True).count() == 3


def test_a_position_biased_ranking_goes_to_people_without_an_annotation(alice, bob):
    project = kind_project(Kind.RANKING, alice, bob)
    task = make_task(project, texts=[WORST, BEST, MID])
    judge = make_judge(project)
    job = judging.judge_run(judge=judge)
    order = ids(task)
    # First shown on top both times: "A.." as served, and "A.." with the order reversed.
    made = judging.judge_batch_store(
        job_id=job.id,
        results=[{"task_id": task.id, "shown_order": order, "first": "ABC", "second": "ACB"}],
    )
    assert made == 0 and not Annotation.objects.exists()
    verdict = JudgeVerdict.objects.get(task=task)
    assert not verdict.consistent and verdict.to_people and verdict.reason == "inconsistent"
    assert not Task.objects.get(id=task.id).is_complete


@pytest.mark.parametrize(
    ("kind", "first", "second", "flags", "message"),
    [
        (Kind.LIKERT, "8", "", [], "no likert answer"),
        (Kind.LIKERT, "5", "", ["Not a flag"], "unknown flags"),
        (Kind.RANKING, "AAB", "ABC", [], "no ranking answer"),
        (Kind.RANKING, "AB", "AB", [], "no ranking answer"),
    ],
)
def test_a_bad_answer_refuses_the_whole_batch(alice, bob, kind, first, second, flags, message):
    project = kind_project(kind, alice, bob)
    good, bad = make_task(project), make_task(project)
    judge = make_judge(project)
    job = judging.judge_run(judge=judge)
    fine = {
        "task_id": good.id,
        "shown_order": ids(good),
        "first": "4" if kind == Kind.LIKERT else "ABC",
        "second": "" if kind == Kind.LIKERT else "CBA",
    }
    wrong = {
        "task_id": bad.id,
        "shown_order": ids(bad),
        "first": first,
        "second": second,
        "flags": flags,
    }
    with pytest.raises(ServiceError, match=message):
        judging.judge_batch_store(job_id=job.id, results=[fine, wrong])
    assert not JudgeVerdict.objects.exists() and not Annotation.objects.exists()


def test_an_order_naming_other_responses_is_refused(alice, bob):
    project = kind_project(Kind.RANKING, alice, bob)
    task, other = make_task(project), make_task(project)
    job = judging.judge_run(judge=make_judge(project))
    with pytest.raises(ServiceError, match="other responses"):
        judging.judge_batch_store(
            job_id=job.id,
            results=[
                {"task_id": task.id, "shown_order": ids(other), "first": "ABC", "second": "CBA"}
            ],
        )


def test_flags_the_judge_names_are_stored_on_its_annotation(alice, bob):
    project = kind_project(Kind.LIKERT, alice, bob)
    task = make_task(project)
    job = judging.judge_run(judge=make_judge(project))
    flag = project.flags[0]
    judging.judge_batch_store(
        job_id=job.id,
        results=[
            {
                "task_id": task.id,
                "shown_order": ids(task),
                "first": "2",
                "second": "",
                "flags": [flag],
            }
        ],
    )
    annotation = Annotation.objects.get(task=task)
    assert (annotation.score, annotation.flags) == (2, [flag])
    assert JudgeVerdict.objects.get(task=task).flags == [flag]


def test_a_reward_model_judge_is_given_pairs_and_rankings_but_no_likert(alice, bob):
    project = kind_project(Kind.LIKERT, alice, bob)
    make_task(project)
    ModelVersion.objects.create(project=project, name="rm", role="reward", path="/nowhere")
    judge = make_judge(project, backend="reward_model")
    assert judging.judged_kinds(judge) == ("pairwise", "ranking")
    assert tasks_for_judging(project=project, labeler=judge.user) != []
    assert (
        tasks_for_judging(project=project, labeler=judge.user, kinds=judging.judged_kinds(judge))
        == []
    )
    from trainer.exceptions import JobError

    with pytest.raises(JobError, match="pairwise / ranking"):
        judging.judge_run(judge=judge)


def test_a_project_with_aspects_gives_judges_no_likert_tasks(alice, bob):
    project = kind_project(Kind.LIKERT, alice, bob, aspects=["helpful", "honest"])
    make_task(project)
    judge = make_judge(project)
    assert tasks_for_judging(project=project, labeler=judge.user) == []


def test_rubrics_are_per_task_kind(alice, bob):
    project = kind_project(Kind.LIKERT, alice, bob)
    judge = make_judge(project, rubrics={"likert": "Score it: {response}"})
    assert judging.judge_config(judge)["likert_rubric"] == "Score it: {response}"
    with pytest.raises(ServiceError, match="per task kind"):
        judging.judge_update(judge=judge, rubrics={"essay": "..."})


def people_score(project, person, score):
    from annotator.services import annotation_submit, task_claim_next

    made = 0
    while (lease := task_claim_next(project=project, labeler=person)) is not None:
        annotation_submit(task=lease.task, labeler=person, answer={"score": score})
        made += 1
    return made


def test_trust_is_measured_per_task_kind(alice, bob, client):
    """A judge whose Likert scores people contradict loses trust on Likert tasks, not on pairs."""
    project = kind_project(Kind.LIKERT, alice, bob)
    likert = [make_task(project, texts=[BEST]) for _ in range(2)]
    judge = make_judge(project, min_calibration_tasks=2, min_agreement=0.7)
    job = judging.judge_run(judge=judge)
    judging.judge_batch_store(
        job_id=job.id,
        results=[
            {"task_id": t.id, "shown_order": ids(t), "first": "7", "second": ""} for t in likert
        ],
    )
    assert {v.reason for v in JudgeVerdict.objects.all()} == {"calibrating"}
    assert people_score(project, bob, 1) == 2
    trust = judging.judge_trust(judge, Kind.LIKERT)
    assert (trust.calibrated, trust.agreement) == (2, 0.0)
    assert judging.judge_trust(judge, Kind.PAIRWISE).calibrated == 0
    later = make_task(project, texts=[MID])
    project.kind = Kind.PAIRWISE
    pair = make_task(project, texts=[BEST, WORST])
    judging.judge_batch_store(
        job_id=job.id,
        results=[
            {"task_id": later.id, "shown_order": ids(later), "first": "7", "second": ""},
            {"task_id": pair.id, "shown_order": ids(pair), "first": "a", "second": "b"},
        ],
    )
    assert JudgeVerdict.objects.get(task=later).reason == "low agreement"
    assert JudgeVerdict.objects.get(task=pair).reason == "calibrating"
    # The calibration page and its API show the Likert figures.
    client.force_login(alice)
    page = client.get(reverse("quality_calibration", args=[project.id]))
    assert page.status_code == 200 and b"Likert scores" in page.content
    api = api_client_for(alice).get(f"/api/v1/projects/{project.id}/quality/calibration/")
    likert_figures = api.json()["judges"][0]["likert"]
    assert likert_figures["tasks"] == 2 and likert_figures["agreement"] == 0.0
    assert [(r["round"], r["tasks"]) for r in likert_figures["rounds"]] == [(None, 2)]
    assert api.json()["judges"][0]["ranking"] is None


def test_the_api_takes_a_rubric_per_task_kind_and_names_the_kinds_when_refusing(alice, bob):
    project = kind_project(Kind.RANKING, alice, bob)
    judge = make_judge(project)
    client = api_client_for(alice)
    url = f"/api/v1/judges/{judge.id}/"
    body = {"rubrics": {"ranking": "Order them: {responses}"}, "hold_s": 30}
    response = client.patch(url, body, format="json")
    assert response.status_code == 200, response.content
    judge.refresh_from_db()
    assert judge.rubrics == {"ranking": "Order them: {responses}"} and judge.hold_s == 30
    refused = client.patch(url, {"rubrics": {"essay": "..."}}, format="json")
    assert refused.status_code == 400
    assert "pairwise, likert, ranking" in refused.content.decode()
    judge.refresh_from_db()
    assert judge.rubrics == {"ranking": "Order them: {responses}"}  # nothing lost


def test_the_calibration_page_and_api_show_ranking_figures(alice, bob, client):
    from annotator.services import annotation_submit, task_claim_next

    project = kind_project(Kind.RANKING, alice, bob)
    task = make_task(project, texts=[MID, WORST, BEST])
    judge = make_judge(project, audit_share=1.0)  # people see it too
    job = judging.judge_run(judge=judge)
    order = ids(task)  # served as MID, WORST, BEST: the judge ranks BEST (C), MID (A), WORST (B)
    judging.judge_batch_store(job_id=job.id, results=[
        {"task_id": task.id, "shown_order": order, "first": "CAB", "second": "ACB"}])  # fmt: skip
    Task.objects.update(held_until=None)
    lease = task_claim_next(project=project, labeler=bob)
    by_text = text_ids(task)
    # bob puts MID first: the judge and he agree on 2 of the 3 pairs.
    bobs = [by_text[MID], by_text[BEST], by_text[WORST]]
    annotation_submit(task=lease.task, labeler=bob, answer={"ranking": bobs})
    client.force_login(alice)
    page = client.get(reverse("quality_calibration", args=[project.id])).content.decode()
    assert "Rankings" in page and "Pairs ordered as people do" in page
    [figures] = api_client_for(alice).get(
        f"/api/v1/projects/{project.id}/quality/calibration/").json()["judges"]  # fmt: skip
    ranking = figures["ranking"]
    assert ranking["tasks"] == 1 and ranking["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert ranking["top_agreement"] == 0.0 and figures["likert"] is None
