"""Judges on the app side: accounts of kind ai, batches stored whole, the mixing policy, and a
judging job run by the worker's runner in a child process against the simulated endpoint."""

import io

import pytest

from annotator.exceptions import ServiceError
from annotator.judging import AI_GROUP, tasks_for_judging
from annotator.models import Annotation, JudgeVerdict, LabelerKind, Task
from tests.factories import make_task
from tests.judge_server import judge_server
from trainer import runner
from trainer.judging import services as judging
from trainer.models import Judge, TrainingJob

pytestmark = pytest.mark.django_db
GOOD, BAD = "a happy garden with music", "a plain reply here now"


@pytest.fixture
def tasks(project):
    return [make_task(project, texts=[GOOD, BAD]) for _ in range(6)]


def make_judge(project, name="j1", **fields):
    fields = {"base_url": "http://127.0.0.1:9/v1", "model": "rule=target-words", **fields}
    return judging.judge_create(project=project, name=name, **fields)


def result(task, first, second):
    order = list(task.task_completions.values_list("completion_id", flat=True))
    return {"task_id": task.id, "shown_order": order, "first": first, "second": second}


def test_a_judge_is_a_labeler_account_of_kind_ai(project):
    judge = make_judge(project)
    assert judge.user.groups.filter(name=AI_GROUP).exists()
    assert judge.user.memberships.get(project=project).role == "labeler"
    assert not judge.user.has_usable_password()


def test_it_refuses_a_key_where_an_environment_variable_name_belongs(project):
    with pytest.raises(ServiceError, match="name"):
        make_judge(project, api_key_env="sk-live-abc123")


def test_a_batch_is_stored_whole_with_consistent_verdicts_as_ai_annotations(project, tasks):
    judge = make_judge(project, min_calibration_tasks=0, audit_share=0.0)
    job = judging.judge_run(judge=judge)
    made = judging.judge_batch_store(
        job_id=job.id, results=[result(tasks[0], "a", "b"), result(tasks[1], "a", "a")]
    )
    assert made == 1
    annotation = Annotation.objects.get(task=tasks[0])
    assert annotation.labeler_kind == LabelerKind.AI and annotation.labeler == judge.user
    assert annotation.chosen.text == GOOD
    bad = JudgeVerdict.objects.get(task=tasks[1])
    assert not bad.consistent and bad.to_people and bad.reason == "inconsistent"
    assert not Annotation.objects.filter(task=tasks[1]).exists()
    # The settled task is complete; the inconsistent one stays open, served first to people.
    assert Task.objects.get(id=tasks[0].id).is_complete
    t1 = Task.objects.get(id=tasks[1].id)
    assert not t1.is_complete and t1.priority == judge.people_priority
    assert t1.annotation_count == 0  # the judge never counts towards people's overlap


def test_a_tie_where_the_project_allows_none_goes_to_people_without_an_annotation(
    project, tasks, bob
):
    project.allow_tie = False
    project.save()
    judge = make_judge(project, min_calibration_tasks=0, audit_share=0.0)
    job = judging.judge_run(judge=judge)
    judging.judge_batch_store(job_id=job.id, results=[result(tasks[0], "tie", "tie")])
    verdict = JudgeVerdict.objects.get(task=tasks[0])
    assert verdict.consistent and verdict.to_people and verdict.reason == "not allowed"
    assert not Annotation.objects.exists() and not Task.objects.get(id=tasks[0].id).is_complete
    # People answer it; the judge's tie is no label of its own, so it measures nothing.
    Task.objects.filter(id=tasks[0].id).update(overlap=1)
    Task.objects.exclude(id=tasks[0].id).update(is_complete=True)
    assert people_answer(project, bob, pick=lambda texts: 0) == 1
    assert judging.judge_trust(judge) == judging.Trust(None, 0, 0)
    Task.objects.exclude(id=tasks[0].id).update(is_complete=False)
    project.allow_tie = True
    project.save()
    judging.judge_batch_store(job_id=job.id, results=[result(tasks[1], "tie", "tie")])
    assert Annotation.objects.get(task=tasks[1]).verdict == Annotation.Verdict.TIE


def test_a_refused_batch_writes_nothing(project, tasks):
    judge = make_judge(project, min_calibration_tasks=0, audit_share=0.0)
    job = judging.judge_run(judge=judge)
    batch = [result(tasks[0], "a", "b"), {**result(tasks[1], "a", "b"), "task_id": 10**9}]
    with pytest.raises(ServiceError):
        judging.judge_batch_store(job_id=job.id, results=batch)
    assert not JudgeVerdict.objects.exists() and not Annotation.objects.exists()


def test_the_mixing_policy_sends_unsure_low_agreement_and_a_share_to_people(project):
    judge = make_judge(project, min_confidence=0.6, audit_share=0.0, min_calibration_tasks=10,
                       min_agreement=0.8)  # fmt: skip
    calibrated = judging.Trust(agreement=0.9, calibrated=10, asked_people=10)
    route = judging.route
    assert route(judge=judge, trust=calibrated, task_id=1, consistent=True, confidence=0.9) == (
        False, "")  # fmt: skip
    assert route(judge=judge, trust=calibrated, task_id=1, consistent=False, confidence=0.9)[1] == (
        "inconsistent")  # fmt: skip
    assert route(judge=judge, trust=calibrated, task_id=1, consistent=True, confidence=0.5)[1] == (
        "unsure")  # fmt: skip
    low = judging.Trust(agreement=0.7, calibrated=10, asked_people=10)
    assert route(judge=judge, trust=low, task_id=1, consistent=True, confidence=None)[1] == (
        "low agreement")  # fmt: skip
    new = judging.Trust(agreement=None, calibrated=0, asked_people=3)
    assert route(judge=judge, trust=new, task_id=1, consistent=True, confidence=None)[1] == (
        "calibrating")  # fmt: skip
    judge.audit_share = 0.1
    audited = [
        route(judge=judge, trust=calibrated, task_id=i, consistent=True, confidence=None)[0]
        for i in range(2000)
    ]
    assert 0.08 < sum(audited) / 2000 < 0.12


def people_answer(project, person, *, pick):
    """`person` answers every task the queue serves them; `pick(texts)` is the text chosen."""
    from annotator.services import annotation_submit, task_claim_next

    made = 0
    while (lease := task_claim_next(project=project, labeler=person)) is not None:
        texts = dict(lease.task.task_completions.values_list("completion_id", "completion__text"))
        choice = "a" if pick([texts[i] for i in lease.shown_order]) == 0 else "b"
        annotation_submit(task=lease.task, labeler=person, answer={"choice": choice})
        made += 1
    return made


def test_inconsistent_verdicts_do_not_use_up_the_calibration_tasks(project, tasks):
    judge = make_judge(project, min_calibration_tasks=2, audit_share=0.0)
    job = judging.judge_run(judge=judge)
    results = [result(t, "a", "a") for t in tasks[:2]] + [result(t, "a", "b") for t in tasks[2:5]]
    judging.judge_batch_store(job_id=job.id, results=results)
    reasons = dict(JudgeVerdict.objects.values_list("task_id", "reason"))
    assert [reasons[t.id] for t in tasks[:5]] == [
        "inconsistent", "inconsistent", "calibrating", "calibrating", ""]  # fmt: skip


def test_people_label_what_the_policy_sends_them_and_a_disagreeing_judge_loses_trust(
    project, tasks, bob
):
    Task.objects.filter(id__in=[t.id for t in tasks[4:]]).delete()  # four tasks, all judged
    Task.objects.update(overlap=1)
    judge = make_judge(project, min_calibration_tasks=3, audit_share=0.0, min_agreement=0.7)
    job = judging.judge_run(judge=judge)
    # The judge prefers BAD on the first four tasks, consistently in both orders.
    wrong = [result(t, *(("b", "a") if t.task_completions.first().completion.text == GOOD
                          else ("a", "b"))) for t in tasks[:4]]  # fmt: skip
    judging.judge_batch_store(job_id=job.id, results=wrong)
    sent = JudgeVerdict.objects.filter(to_people=True)
    assert sent.count() == 3 and {v.reason for v in sent} == {"calibrating"}
    assert Task.objects.filter(is_complete=True).count() == 1  # the fourth, settled unmeasured
    # People label the calibration tasks (and only those: the settled one is complete).
    assert people_answer(project, bob, pick=lambda texts: texts.index(GOOD)) == 3
    people = Annotation.objects.exclude(labeler_kind=LabelerKind.AI)
    assert people.count() == 3 and all(a.chosen.text == GOOD for a in people)
    trust = judging.judge_trust(judge)
    assert (trust.calibrated, trust.agreement) == (3, 0.0)
    # Measured below its threshold: its next verdicts go to people, consistent or not.
    later = make_task(project, texts=[GOOD, BAD])
    judging.judge_batch_store(job_id=job.id, results=[result(later, "a", "b")])
    assert JudgeVerdict.objects.get(task=later).reason == "low agreement"
    assert not Task.objects.get(id=later.id).is_complete


def test_audited_tasks_stay_open_and_peoples_labels_on_them_calibrate_the_judge(
    project, tasks, bob
):
    Task.objects.filter(id__in=[t.id for t in tasks[2:]]).delete()
    Task.objects.update(overlap=1)
    judge = make_judge(project, min_calibration_tasks=0, audit_share=1.0)
    job = judging.judge_run(judge=judge)
    judging.judge_batch_store(job_id=job.id, results=[result(t, "a", "b") for t in tasks[:2]])
    assert {v.reason for v in JudgeVerdict.objects.all()} == {"audit"}
    assert Annotation.objects.filter(labeler_kind=LabelerKind.AI).count() == 2
    assert not Task.objects.filter(is_complete=True).exists()
    assert people_answer(project, bob, pick=lambda texts: 0) == 2
    assert judging.judge_trust(judge).calibrated == 2


def test_tasks_for_judging_leave_out_what_the_judge_already_judged(project, tasks):
    judge = make_judge(project, min_calibration_tasks=0, audit_share=0.0)
    job = judging.judge_run(judge=judge)
    judging.judge_batch_store(job_id=job.id, results=[result(tasks[0], "a", "a")])
    rows = tasks_for_judging(project=project, labeler=judge.user)
    assert tasks[0].id not in [r["task_id"] for r in rows] and len(rows) == 5
    assert sorted(rows[0]["responses"]) == sorted([GOOD, BAD])


def test_a_judging_job_runs_in_the_child_process_batch_by_batch(project, tasks, tmp_path, settings):
    settings.PREFLOOP_MODELS_DIR = str(tmp_path)
    with judge_server() as url:
        judge = make_judge(project, base_url=url, min_calibration_tasks=0, audit_share=0.0)
        job = judging.judge_run(judge=judge, config={"batch_size": 4})
        assert runner.job_run(job_id=job.id, worker="test") == TrainingJob.Status.SUCCEEDED
    job.refresh_from_db()
    assert job.snapshot_rows == 6 and job.step == 6
    assert JudgeVerdict.objects.filter(job_id=job.id, consistent=True).count() == 6
    chosen = Annotation.objects.filter(labeler_kind="ai").values_list("chosen__text", flat=True)
    assert list(chosen) == [GOOD] * 6
    assert job.metrics[-1]["judged"] == 6 and job.metrics[-1]["calls"] == 12


def test_a_failing_judge_is_paused_with_the_reason_and_keeps_whole_batches(
    project, tasks, tmp_path, settings, monkeypatch
):
    settings.PREFLOOP_MODELS_DIR = str(tmp_path)
    secret = "sk-never-shown-77aa"
    monkeypatch.setenv("JUDGE_KEY", secret)
    with judge_server(tmp_path / "auth.log") as url:
        # 4 requests answer (the first batch: 2 tasks, both orders), then every one fails.
        judge = make_judge(
            project, base_url=url, model="rule=target-words;failafter=4", retries=1,
            concurrency=1, min_calibration_tasks=0, audit_share=0.0, api_key_env="JUDGE_KEY",
        )  # fmt: skip
        job = judging.judge_run(judge=judge, config={"batch_size": 2, "backoff_s": 0.01})
        assert runner.job_run(job_id=job.id, worker="test") == TrainingJob.Status.FAILED
    judge = Judge.objects.get(id=judge.id)
    assert judge.paused and "last: HTTP 500" in judge.paused_reason
    assert JudgeVerdict.objects.count() == 2 and Annotation.objects.count() == 2
    # The key went to the endpoint, and nowhere the app keeps or shows text.
    assert f"Bearer {secret}" in (tmp_path / "auth.log").read_text()
    job.refresh_from_db()
    kept = [job.error, job.log_tail, str(job.config), str(job.metrics), judge.paused_reason]
    kept += [open(p).read() for p in (tmp_path / f"job-{job.id}").glob("*.json*")]
    assert not [text for text in kept if secret in text]
    with pytest.raises(Exception, match="paused"):
        judging.judge_run(judge=judge)
    judging.judge_resume(judge=judge)
    judge.refresh_from_db()
    assert not judge.paused and judging.judge_run(judge=judge).dataset == {"judge": judge.id}


def test_a_timeout_pauses_the_judge_with_the_reason(project, tasks, tmp_path, settings):
    settings.PREFLOOP_MODELS_DIR = str(tmp_path)
    with judge_server() as url:
        judge = make_judge(project, base_url=url, model="delay=1", timeout_s=0.2, retries=0)
        job = judging.judge_run(judge=judge)
        assert runner.job_run(job_id=job.id, worker="test") == TrainingJob.Status.FAILED
    judge = Judge.objects.get(id=judge.id)
    assert judge.paused and "no answer within 0.2 s" in judge.paused_reason
    assert not JudgeVerdict.objects.exists()


def test_the_loop_has_its_judge_label_a_new_round_first(project):
    from trainer.loop.services import _judge_first
    from trainer.models import LoopPolicy, LoopRound, ModelVersion

    judge = make_judge(project)
    base = ModelVersion.objects.create(project=project, name="base", role="policy", path="/b")
    policy = LoopPolicy.objects.create(project=project, base_policy=base, judge=judge)
    round_ = LoopRound.objects.create(project=project, number=2, previous_policy=base)
    Task.objects.filter(id=make_task(project).id).update(round=2)
    _judge_first(policy, round_)
    job = TrainingJob.objects.get(kind="judge")
    assert job.dataset == {"judge": judge.id, "round": 2}
    judging.judge_pause(judge=judge, reason="down")
    policy.refresh_from_db()
    _judge_first(policy, round_)  # a paused judge leaves the round to people
    assert TrainingJob.objects.filter(kind="judge").count() == 1


def test_a_stored_key_reaches_the_endpoint_and_nothing_the_app_keeps(
    project, tasks, tmp_path, settings, monkeypatch
):
    from trainer.judging import keys

    settings.PREFLOOP_MODELS_DIR = str(tmp_path)
    secret = "sk-stored-5e6f7a8b9c"
    monkeypatch.setenv(keys.STORED_KEY_ENV, "sk-a-workers-own-variable")  # never passed on
    with judge_server(tmp_path / "auth.log") as url:
        judge = make_judge(
            project, base_url=url, api_key=f"  {secret}\n", min_calibration_tasks=0,
            audit_share=0.0,
        )  # fmt: skip
        stored = Judge.objects.get(id=judge.id).api_key_encrypted
        assert stored and secret not in stored and keys.decrypt(stored) == secret
        job = judging.judge_run(judge=judge, config={"batch_size": 3})
        assert job.config["api_key_env"] == keys.STORED_KEY_ENV
        assert runner.job_run(job_id=job.id, worker="test") == TrainingJob.Status.SUCCEEDED
    sent = (tmp_path / "auth.log").read_text()
    assert f"Bearer {secret}" in sent and "sk-a-workers-own-variable" not in sent
    job.refresh_from_db()
    kept = [job.error, job.log_tail, str(job.config), str(job.metrics), str(job.dataset)]
    kept += [p.read_text() for p in (tmp_path / f"job-{job.id}").rglob("*") if p.is_file()]
    assert not [text for text in kept if secret in text]
    assert keys.STORED_KEY_ENV not in runner.child_env()


def test_a_key_the_installation_can_no_longer_read_pauses_the_judge_with_the_reason(
    project, tasks, tmp_path, settings
):
    settings.PREFLOOP_MODELS_DIR = str(tmp_path)
    judge = make_judge(project, api_key="sk-old-key")
    job = judging.judge_run(judge=judge)
    settings.SECRET_KEY = "a-new-secret-key-after-a-rotation-0123456789-abcdefgh"
    assert runner.job_run(job_id=job.id, worker="test") == TrainingJob.Status.FAILED
    judge = Judge.objects.get(id=judge.id)
    assert judge.paused and "stored API key cannot be read" in judge.paused_reason
    assert "Enter the API key again" in TrainingJob.objects.get(id=job.id).error


def test_the_key_is_given_one_way_and_can_be_dropped(project):
    with pytest.raises(ServiceError, match="not both") as both:
        make_judge(project, api_key="sk-x", api_key_env="OPENAI_API_KEY")
    assert both.value.field == "api_key"
    with pytest.raises(ServiceError, match="no spaces"):
        make_judge(project, api_key="sk-two words")
    judge = make_judge(project, api_key="sk-x")
    judging.judge_update(judge=judge, clear_api_key=True, api_key_env="OPENAI_API_KEY")
    judge.refresh_from_db()
    assert judge.api_key_encrypted == "" and judge.api_key_env == "OPENAI_API_KEY"


def test_a_changed_encryption_key_reads_old_keys_through_fallbacks_and_rotates_them(
    project, settings
):
    from cryptography.fernet import Fernet
    from django.core.management import CommandError, call_command

    from trainer.judging import keys

    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PREFLOOP_ENCRYPTION_KEY = first
    judge = make_judge(project, api_key="sk-kept-across-rotation")
    unread = make_judge(project, name="other", api_key="sk-lost")
    Judge.objects.filter(id=unread.id).update(
        api_key_encrypted=Fernet(Fernet.generate_key()).encrypt(b"sk-lost").decode()
    )
    settings.PREFLOOP_ENCRYPTION_KEY = second
    old_token = Judge.objects.get(id=judge.id).api_key_encrypted
    with pytest.raises(keys.KeyUnreadable):
        keys.decrypt(old_token)
    settings.PREFLOOP_ENCRYPTION_KEY_FALLBACKS = [first]
    assert keys.decrypt(old_token) == "sk-kept-across-rotation"
    out = io.StringIO()
    with pytest.raises(CommandError, match="other"):
        call_command("rotate_judge_keys", stdout=out)
    assert "Re-encrypted 1 stored API key(s)." in out.getvalue()
    settings.PREFLOOP_ENCRYPTION_KEY_FALLBACKS = []
    new_token = Judge.objects.get(id=judge.id).api_key_encrypted
    assert new_token != old_token and keys.decrypt(new_token) == "sk-kept-across-rotation"
    # A key stored under the key derived from the secret key stays readable once one is set.
    settings.PREFLOOP_ENCRYPTION_KEY = ""
    derived = keys.encrypt("sk-before-a-key-was-set")
    settings.PREFLOOP_ENCRYPTION_KEY = first
    assert keys.decrypt(derived) == "sk-before-a-key-was-set"
