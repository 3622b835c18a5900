"""Job pages that stay readable: logs without escape codes or progress-bar redraws, constant
metrics as text, sample generations, smoothing, and runs compared on shared charts."""

import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from tests.factories import ProjectFactory
from trainer import plots
from trainer.logs import clean_log
from trainer.models import TrainingJob

SVG = "{http://www.w3.org/2000/svg}"
COMPARE_MAX_QUERIES = 6
XSS = "<script>alert(1)</script>"

TTY_LOG = (
    "\x1b[1m\x1b[32mINFO\x1b[0m loading the model\n"
    "Map:   0%|          | 0/20 [00:00<?, ?it/s]"
    "\rMap:  50%|█████     | 10/20 [00:01<00:01, 9.1it/s]"
    "\rMap: 100%|██████████| 20/20 [00:02<00:00, 9.5it/s]\n"
    "Train:  10%|█         | 1/10 [00:01<00:09, 1.00s/it]\n"
    "Train:  20%|██        | 2/10 [00:02<00:08, 1.00s/it]\n"
    "{'loss': 0.69}\n"
    "\x1b]0;title\x07done\n"
)


def job_with(project, **fields) -> TrainingJob:
    fields.setdefault("kind", "ppo")
    fields.setdefault("status", "running")
    return TrainingJob.objects.create(project=project, **fields)


def test_it_cleans_escape_codes_and_keeps_the_last_state_of_each_bar():
    assert clean_log(TTY_LOG) == (
        "INFO loading the model\n"
        "Map: 100%|██████████| 20/20 [00:02<00:00, 9.5it/s]\n"
        "Train:  20%|██        | 2/10 [00:02<00:08, 1.00s/it]\n"
        "{'loss': 0.69}\n"
        "done"
    )
    assert clean_log("") == ""


def test_the_job_page_shows_the_cleaned_log(client, project, alice):
    job = job_with(project, log_tail=TTY_LOG)
    client.force_login(alice)
    html = client.get(reverse("training_job", args=[job.id])).content.decode()
    assert "\x1b" not in html and "0/20 [00:00" not in html
    assert "Map: 100%" in html


def test_it_lists_constant_metrics_instead_of_plotting_them(client, project, alice):
    metrics = [{"step": s, "loss": 1 / s, "kl_coef": 0.05, "lr": 1e-5} for s in range(1, 6)]
    job = job_with(project, metrics=metrics)
    client.force_login(alice)
    response = client.get(reverse("training_job", args=[job.id]))
    assert [c["name"] for c in response.context["charts"]] == ["loss"]
    html = response.content.decode()
    assert 'data-metric="kl_coef"' not in html
    assert "<code>kl_coef</code> = 0.05" in html and "<code>lr</code> = 1.00e-5" in html


def test_it_shows_the_latest_sample_generations_escaped(client, project, alice):
    metrics = [{"step": s, "reward": s} for s in range(1, 5)]
    metrics += [
        {"step": 2, "samples": [{"prompt": "Old?", "response": "old", "score": 0.1}]},
        {"step": 4, "samples": [{"prompt": XSS, "response": "Paris.", "score": 1.25}]},
    ]
    job = job_with(project, metrics=metrics)
    client.force_login(alice)
    response = client.get(reverse("training_job", args=[job.id]))
    assert [r["step"] for r in response.context["samples"]] == [4, 2]
    html = response.content.decode()
    assert "Step 4" in html and "Paris." in html and "1.250" in html
    assert XSS not in html and "&lt;script&gt;" in html
    assert [c["name"] for c in response.context["charts"]] == ["reward"]


def test_a_generate_job_shows_where_samples_will_appear(client, project, alice):
    job = job_with(project, kind="generate")
    client.force_login(alice)
    html = client.get(reverse("training_job", args=[job.id])).content.decode()
    assert "Sample generations" in html and "None yet" in html


def test_it_smooths_on_request_and_keeps_the_smoothing_while_polling(client, project, alice):
    job = job_with(project, metrics=[{"step": s, "loss": (s % 3) + 1} for s in range(1, 30)])
    client.force_login(alice)
    response = client.get(reverse("training_job", args=[job.id]), {"smooth": "0.9"})
    html = response.content.decode()
    assert 'class="smoothed"' in html
    assert f'hx-get="{reverse("training_job", args=[job.id])}?smooth=0.9"' in html
    plain = client.get(reverse("training_job", args=[job.id]), {"smooth": "junk"})
    assert 'class="smoothed"' not in plain.content.decode()


def test_smoothing_is_a_debiased_moving_average():
    assert plots.smooth([(1, 1.0), (2, 1.0)], 0.9) == [
        (1, pytest.approx(1.0)),
        (2, pytest.approx(1.0)),
    ]
    smoothed = [y for _, y in plots.smooth([(1, 0.0), (2, 10.0), (3, 0.0)], 0.5)]
    assert smoothed == pytest.approx([0.0, 20 / 3, 20 / 7])
    assert plots.smooth([(1, 3.0)], 0) == [(1, 3.0)]


def test_it_overlays_the_metrics_of_two_runs(client, project, alice):
    a = job_with(project, metrics=[{"step": s, "loss": 1 / s, "lr": 1.0} for s in range(1, 9)])
    b = job_with(project, kind="raft", metrics=[{"step": s, "loss": 2 / s} for s in range(1, 5)])
    foreign = job_with(ProjectFactory(), metrics=[{"step": 1, "secret_metric": 1}])
    client.force_login(alice)
    url = reverse("training_compare", args=[project.id])
    response = client.get(url, {"job": [a.id, b.id, foreign.id], "smooth": "0.6"})
    assert [j.id for j in response.context["jobs"]] == [a.id, b.id]
    (chart,) = response.context["charts"]  # lr is constant in its run: not drawn
    root = ET.fromstring(chart["svg"])  # noqa: S314 - our own SVG
    runs = [line.get("data-run") for line in root.iter(f"{SVG}polyline")]
    assert runs == [f"#{a.id} ppo", f"#{b.id} raft"]
    assert "secret_metric" not in response.content.decode()


def test_it_asks_for_two_runs_and_refuses_labelers(client, project, alice, bob):
    job = job_with(project, metrics=[{"step": 1, "loss": 1}])
    client.force_login(alice)
    html = client.get(reverse("training_compare", args=[project.id]), {"job": job.id})
    assert "Pick two or more jobs" in html.content.decode()
    client.force_login(bob)
    assert client.get(reverse("training_compare", args=[project.id])).status_code == 403


def test_the_jobs_page_offers_runs_to_compare(client, project, alice):
    job = job_with(project)
    client.force_login(alice)
    html = client.get(reverse("training_jobs", args=[project.id])).content.decode()
    assert f'hx-preserve="true" name="job" value="{job.id}" form="compare-form"' in html
    assert 'id="compare-form"' in html


def test_the_jobs_table_refreshes_while_a_job_runs_and_not_after(client, project, alice):
    job = job_with(project, status="queued")
    client.force_login(alice)
    url = reverse("training_jobs", args=[project.id])
    assert 'hx-trigger="every 3s" hx-select="#job-table"' in client.get(url).content.decode()
    TrainingJob.objects.filter(id=job.id).update(status="succeeded")
    html = client.get(url).content.decode()
    assert 'id="job-table"' in html and "every 3s" not in html
    assert "Succeeded" in html and "Queued" not in html


def test_it_compares_runs_within_its_query_budget(
    client, project, alice, django_assert_max_num_queries
):
    ids = [
        job_with(project, metrics=[{"step": s, "loss": s * i} for s in range(1, 50)]).id
        for i in range(1, 6)
    ]
    client.force_login(alice)
    with django_assert_max_num_queries(COMPARE_MAX_QUERIES):
        response = client.get(reverse("training_compare", args=[project.id]), {"job": ids})
    assert len(response.context["jobs"]) == 5
