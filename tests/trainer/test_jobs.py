"""Job lifecycle on the job row: claim, heartbeat, cancel, reaper, and the API around it."""

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from annotator.models import Completion, Prompt
from tests.factories import MembershipFactory, ProjectFactory
from trainer import services
from trainer.exceptions import JobError
from trainer.models import TrainingJob

Status = TrainingJob.Status


@pytest.fixture
def job(project):
    return TrainingJob.objects.create(project=project, kind="reward", config={})


@pytest.mark.django_db
class TestClaim:
    def test_a_job_is_claimed_once(self, job):
        assert services.job_claim(job_id=job.id, worker="w1")
        assert not services.job_claim(job_id=job.id, worker="w2")
        job.refresh_from_db()
        assert (job.status, job.worker, job.attempts) == (Status.RUNNING, "w1", 1)

    def test_a_cancelled_job_is_never_claimed(self, job):
        services.job_cancel(job=job)
        assert not services.job_claim(job_id=job.id, worker="w1")
        job.refresh_from_db()
        assert job.status == Status.CANCELLED


@pytest.mark.django_db
class TestHeartbeat:
    def test_it_records_progress_and_appends_metrics(self, job):
        services.job_claim(job_id=job.id, worker="w1")
        services.job_heartbeat(
            job_id=job.id, worker="w1", step=1, total=4, new_metrics=[{"step": 1, "loss": 0.7}]
        )
        services.job_heartbeat(
            job_id=job.id, worker="w1", step=2, total=4, new_metrics=[{"step": 2, "loss": 0.6}]
        )
        job.refresh_from_db()
        assert (job.step, job.total_steps) == (2, 4)
        assert [m["loss"] for m in job.metrics] == [0.7, 0.6]

    def test_a_reaped_job_tells_its_old_worker_to_stop(self, job):
        services.job_claim(job_id=job.id, worker="w1")
        TrainingJob.objects.filter(id=job.id).update(
            heartbeat_at=timezone.now() - timedelta(minutes=10)
        )
        assert services.jobs_reap(stale_after=timedelta(seconds=60)) == [job.id]
        assert not services.job_heartbeat(job_id=job.id, worker="w1", step=3)
        assert services.job_finish(job_id=job.id, worker="w1", status=Status.SUCCEEDED) is None
        job.refresh_from_db()
        assert job.status == Status.FAILED and "heartbeat" in job.error


@pytest.mark.django_db
class TestReaper:
    def test_it_leaves_live_jobs_alone(self, job):
        services.job_claim(job_id=job.id, worker="w1")
        assert services.jobs_reap(stale_after=timedelta(seconds=60)) == []


@pytest.mark.django_db
class TestCancel:
    def test_a_queued_job_is_cancelled_at_once(self, job):
        assert services.job_cancel(job=job).status == Status.CANCELLED

    def test_a_running_job_is_asked_to_stop(self, job):
        services.job_claim(job_id=job.id, worker="w1")
        job = services.job_cancel(job=job)
        assert job.status == Status.RUNNING and job.cancel_requested
        assert services.job_cancel_requested(job_id=job.id)

    def test_a_finished_job_cannot_be_cancelled(self, job):
        services.job_claim(job_id=job.id, worker="w1")
        services.job_finish(job_id=job.id, worker="w1", status=Status.FAILED, error="x")
        with pytest.raises(JobError):
            services.job_cancel(job=job)


@pytest.mark.django_db
class TestFinish:
    def test_a_successful_job_registers_its_model_with_lineage(self, job):
        services.job_claim(job_id=job.id, worker="w1")
        done = services.job_finish(
            job_id=job.id,
            worker="w1",
            status=Status.SUCCEEDED,
            final_metrics={"val_accuracy": 0.95},
        )
        model = done.output_model
        assert (model.role, model.job_id, model.metrics) == (
            "reward",
            job.id,
            {"val_accuracy": 0.95},
        )
        assert model.path == str(services.model_dir(job))

    def test_a_generate_job_stores_samples_without_nul_bytes(self, project, settings, tmp_path):
        # A byte-level tokenizer can sample the byte 0; PostgreSQL text cannot store it.
        settings.PREFLOOP_MODELS_DIR = tmp_path
        prompt = Prompt.objects.create(project=project, text="hi")
        job = services.job_create(
            project=project, kind="generate", config={"model_name_or_path": "/m"}
        )
        services.job_claim(job_id=job.id, worker="w1")
        out = services.model_dir(job)
        out.mkdir(parents=True)
        row = {"prompt_id": prompt.id, "completion": "a\x00b", "sample_index": 0}
        (out / "completions.jsonl").write_text(json.dumps(row) + "\n")
        services.job_finish(job_id=job.id, worker="w1", status=Status.SUCCEEDED)
        assert Completion.objects.get(prompt=prompt).text == "ab"


@pytest.mark.django_db
class TestApi:
    def test_it_queues_a_job_with_the_full_config(self, alice, project, api_as):
        with mock.patch("trainer.tasks.run_training_job.delay") as delay:
            with self.captured_on_commit():
                resp = api_as(alice).post(
                    "/api/v1/jobs/",
                    {
                        "kind": "reward",
                        "project": project.id,
                        "config": {"model_name_or_path": "/models/tiny", "max_steps": 3},
                    },
                    format="json",
                )
        assert resp.status_code == 201, resp.content
        body = resp.json()
        assert body["status"] == "queued" and body["config"]["max_steps"] == 3
        assert body["config"]["learning_rate"] == 1e-5  # the default, filled in
        delay.assert_called_once_with(body["id"])

    @staticmethod
    def captured_on_commit():
        from django.test import TestCase

        return TestCase.captureOnCommitCallbacks(execute=True)

    def test_it_names_a_bad_config_field(self, alice, project, api_as):
        resp = api_as(alice).post(
            "/api/v1/jobs/",
            {"kind": "reward", "project": project.id, "config": {"learning_rte": 1}},
            format="json",
        )
        assert resp.status_code == 400 and "learning_rte" in resp.json()["detail"]
        assert not TrainingJob.objects.exists()

    def test_a_labeler_cannot_launch_or_see_jobs(self, bob, project, job, api_as):
        client = api_as(bob)
        resp = client.post(
            "/api/v1/jobs/", {"kind": "reward", "project": project.id}, format="json"
        )
        assert resp.status_code == 403
        assert client.get(f"/api/v1/jobs/{job.id}/").status_code == 404
        assert client.get("/api/v1/jobs/").json() == []

    def test_another_projects_admin_gets_404(self, job, api_as):
        from tests.factories import UserFactory

        other_admin = UserFactory(is_staff=True)
        MembershipFactory(project=ProjectFactory(), user=other_admin, role="admin")
        client = api_as(other_admin)
        assert client.get(f"/api/v1/jobs/{job.id}/").status_code == 404
        assert client.post(f"/api/v1/jobs/{job.id}/cancel/").status_code == 404

    def test_cancel_over_the_api(self, alice, job, api_as):
        resp = api_as(alice).post(f"/api/v1/jobs/{job.id}/cancel/")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
        assert api_as(alice).post(f"/api/v1/jobs/{job.id}/cancel/").status_code == 409


@pytest.mark.django_db
class TestValidation:
    def create(self, project, kind, config, **kwargs):
        with mock.patch("trainer.tasks.run_training_job.delay"):
            return services.job_create(project=project, kind=kind, config=config, **kwargs)

    def test_a_policy_job_needs_a_reward_model(self, project):
        with pytest.raises(JobError, match="reward model"):
            self.create(project, "raft", {"model_name_or_path": "/m"})

    def test_the_reward_model_fills_reward_model_path(self, project):
        from trainer.models import ModelVersion

        rm = ModelVersion.objects.create(project=project, name="rm", role="reward", path="/rm")
        policy = ModelVersion.objects.create(project=project, name="p", role="policy", path="/p")
        job = self.create(project, "ppo", {}, input_model=policy, reward_model=rm)
        assert job.config["reward_model_path"] == "/rm"
        assert job.config["model_name_or_path"] == "/p"

    @pytest.mark.parametrize(
        "kind, dataset, message",
        [
            ("reward", {"max_prompts": 3}, "Unknown dataset key"),
            ("generate", {"min_votes": 2}, "Unknown dataset key"),
            ("reward", {"min_votes": "two"}, "min_votes"),
            ("generate", {"split": "dev"}, "split"),
        ],
    )
    def test_it_names_a_bad_dataset_key(self, project, kind, dataset, message):
        with pytest.raises(JobError, match=message):
            self.create(project, kind, {"model_name_or_path": "/m"}, dataset=dataset)
        assert not TrainingJob.objects.exists()
