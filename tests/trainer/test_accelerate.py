"""Jobs through `accelerate launch`: two CPU processes (gloo) stand in for two GPUs.

The accelerate config says MULTI_GPU because that is the distributed type that makes
`accelerate launch` start its processes through torch's elastic launcher; the jobs say
`device: cpu`, so each rank trains on the CPU and DDP talks over gloo.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer import job_child, runner, snapshots
from trainer.configs import validate_config
from trainer.models import TrainingJob

Status = TrainingJob.Status
ROOT = Path(__file__).resolve().parents[2]
ROWS = 32
BATCH = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_process_yaml(path: Path) -> Path:
    path.write_text(
        "compute_environment: LOCAL_MACHINE\n"
        "distributed_type: MULTI_GPU\n"
        "num_machines: 1\n"
        "num_processes: 2\n"
        "mixed_precision: 'no'\n"
        "use_cpu: false\n"
        f"main_process_port: {free_port()}\n"
    )
    return path


@pytest.fixture
def accelerate_config(tmp_path, settings, monkeypatch):
    path = two_process_yaml(tmp_path / "accelerate.yaml")
    settings.PREFLOOP_ACCELERATE_CONFIG = str(path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return path


@pytest.fixture
def job_accelerate_config(tmp_path, settings, monkeypatch):
    """A job's own two-process config, on a worker whose own would run one process."""
    path = two_process_yaml(tmp_path / "job-accelerate.yaml")
    single = tmp_path / "worker-accelerate.yaml"
    single.write_text(path.read_text().replace("num_processes: 2", "num_processes: 1"))
    settings.PREFLOOP_ACCELERATE_CONFIG = str(single)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from trainer.algorithms.tiny import build_tiny_policy

    return str(build_tiny_policy(tmp_path_factory.mktemp("tiny") / "policy", pretrain_steps=0))


def preference_rows() -> list[dict]:
    return [
        {"prompt": f"Say something {i}.", "chosen": " the cat sat", "rejected": " a dog ran"}
        for i in range(ROWS)
    ]


@pytest.fixture
def rows(monkeypatch):
    lines = [(json.dumps(row) + "\n").encode() for row in preference_rows()]
    monkeypatch.setattr(snapshots, "snapshot_chunks", lambda job: iter(lines))


@pytest.fixture
def child_lines(monkeypatch):
    """Every line the job's processes printed, as the runner read them."""
    seen: list[str] = []
    read = runner._reader

    def spy(stream, lines):
        class Tee:
            def __iter__(self):
                for line in stream:
                    seen.append(line)
                    yield line

        read(Tee(), lines)

    monkeypatch.setattr(runner, "_reader", spy)
    return seen


def messages(lines: list[str]) -> list[dict]:
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [m for m in found if isinstance(m, dict)]


def exited(psutil, process, timeout: float) -> bool:
    """Gone, or a zombie: a process that is not our child cannot be waited for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def dpo_job(project, tiny_model, tmp_path, **config) -> TrainingJob:
    config = {
        "model_name_or_path": tiny_model,
        "batch_size": BATCH,
        "max_length": 64,
        "save_steps": 0,
        "device": "cpu",
        **config,
    }
    return TrainingJob.objects.create(
        project=project,
        kind="dpo",
        output_dir=str(tmp_path / "job"),
        config=validate_config(kind="dpo", config=config, input_model=None),
    )


# --- Fast: the command, the reporting rank, the supervisor watch ----------------------------


def test_it_launches_trainer_kinds_through_accelerate(settings, tmp_path):
    settings.PREFLOOP_ACCELERATE_CONFIG = "/etc/prefloop/accelerate.yaml"
    module = ["-m", "trainer.job_child", str(tmp_path)]
    for kind in ("dpo", "sft", "rloo", "grpo", "raft"):
        assert runner.child_command(kind=kind, job_dir=tmp_path) == [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            "/etc/prefloop/accelerate.yaml",
            *module,
        ]
    # Our own loops are single-process: N copies would only repeat the same work.
    for kind in ("reward", "ppo", "generate"):
        assert runner.child_command(kind=kind, job_dir=tmp_path) == [sys.executable, *module]
    settings.PREFLOOP_ACCELERATE_CONFIG = ""
    assert runner.child_command(kind="dpo", job_dir=tmp_path) == [sys.executable, *module]


def test_it_launches_with_the_jobs_own_accelerate_config_over_the_workers(settings, tmp_path):
    settings.PREFLOOP_ACCELERATE_CONFIG = "/etc/prefloop/accelerate.yaml"
    command = runner.child_command(
        kind="grpo", job_dir=tmp_path, accelerate_config="/etc/prefloop/zero2.yaml"
    )
    assert command[command.index("--config_file") + 1] == "/etc/prefloop/zero2.yaml"
    settings.PREFLOOP_ACCELERATE_CONFIG = ""
    command = runner.child_command(
        kind="rloo", job_dir=tmp_path, accelerate_config="/etc/prefloop/zero2.yaml"
    )
    assert command[command.index("--config_file") + 1] == "/etc/prefloop/zero2.yaml"


def test_it_validates_a_jobs_accelerate_config_when_the_job_is_created(tmp_path):
    from trainer.exceptions import JobError

    good = two_process_yaml(tmp_path / "good.yaml")
    base = {"model_name_or_path": "/models/policy", "reward_model_path": "/models/rm"}
    config = validate_config(
        kind="grpo", config={**base, "accelerate_config": str(good)}, input_model=None
    )
    assert config["accelerate_config"] == str(good)
    # Empty: the worker's own, and nothing stored.
    assert "accelerate_config" not in validate_config(
        kind="rloo", config={**base, "accelerate_config": ""}, input_model=None
    )
    (tmp_path / "broken.yaml").write_text("distributed_type: [MULTI_GPU\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    cases = {
        str(tmp_path / "missing.yaml"): "cannot read",
        str(tmp_path): "cannot read",
        str(tmp_path / "broken.yaml"): "not valid YAML",
        str(tmp_path / "list.yaml"): "not an accelerate config",
        "relative.yaml": "absolute path",
    }
    for path, message in cases.items():
        with pytest.raises(JobError, match=message):
            validate_config(
                kind="dpo", config={**base, "accelerate_config": path}, input_model=None
            )
    with pytest.raises(JobError, match="path of a YAML file"):
        validate_config(kind="sft", config={**base, "accelerate_config": 3}, input_model=None)
    # PPO's loop is ours, in one process: a config for accelerate is refused, not ignored.
    with pytest.raises(JobError, match="PPO jobs do not run under accelerate launch"):
        validate_config(
            kind="ppo", config={**base, "accelerate_config": str(good)}, input_model=None
        )


@pytest.mark.django_db
def test_the_api_answers_400_for_a_bad_accelerate_config(alice, project, api_as, tmp_path):
    config = {"model_name_or_path": "/m", "accelerate_config": str(tmp_path / "no.yaml")}
    response = api_as(alice).post(
        "/api/v1/jobs/", {"kind": "dpo", "project": project.id, "config": config}, format="json"
    )
    assert response.status_code == 400
    assert "accelerate_config: cannot read" in response.json()["detail"]
    assert not TrainingJob.objects.exists()


def test_only_rank_zero_reports(tmp_path, monkeypatch, capsys):
    import types
    from dataclasses import dataclass

    @dataclass
    class FakeConfig:
        model_name_or_path: str = ""

    def train(config, rows, output_dir, *, progress, should_stop):
        progress(1, 1, {"loss": 0.5})
        return {"rows": len(rows)}

    module = types.ModuleType("fake_algorithm")
    module.FakeConfig, module.train = FakeConfig, train
    monkeypatch.setitem(sys.modules, "fake_algorithm", module)
    monkeypatch.setitem(job_child.ALGORITHMS, "fake", ("fake_algorithm", "FakeConfig"))
    (tmp_path / "rows.jsonl").write_text('{"prompt": "p"}\n')
    spec = {"kind": "fake", "config": {}, "rows_file": str(tmp_path / "rows.jsonl")}
    (tmp_path / "job.json").write_text(json.dumps({**spec, "output_dir": str(tmp_path / "m")}))

    monkeypatch.setenv("RANK", "1")
    assert job_child.run(tmp_path) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert job_child.run(tmp_path) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [
        {"step": 1, "total": 1, "metrics": {"loss": 0.5}},
        {"final": {"rows": 1}},
    ]


def test_a_rank_exits_when_the_worker_above_its_launcher_dies():
    """worker -> launcher -> rank: killing the worker leaves the launcher alive (as `accelerate
    launch` would be), so the rank must look past its own parent to notice."""
    psutil = pytest.importorskip("psutil")
    rank = (
        "import threading, time; from trainer import job_child; "
        "threading.Thread(target=job_child._exit_when_orphaned, daemon=True).start(); "
        "time.sleep(120)"
    )
    launcher = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {rank!r}]); "
        "time.sleep(120)"
    )
    worker = (
        "import os, subprocess, sys, time; "
        f"env = dict(os.environ, {job_child.SUPERVISOR_ENV}=str(os.getpid())); "
        f"subprocess.Popen([sys.executable, '-c', {launcher!r}], env=env); time.sleep(120)"
    )
    process = subprocess.Popen([sys.executable, "-c", worker], cwd=ROOT)
    tree: list = []
    try:
        deadline = time.monotonic() + 60
        while len(tree) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            tree = psutil.Process(process.pid).children(recursive=True)
        launcher_process = next(p for p in tree if p.ppid() == process.pid)
        rank_process = next(p for p in tree if p.ppid() == launcher_process.pid)
        time.sleep(job_child.PARENT_CHECK_SECONDS + 1)  # the rank is happy while it is supervised
        assert exited(psutil, rank_process, timeout=0) is False

        process.kill()
        process.wait()
        assert exited(psutil, rank_process, timeout=30)
        assert launcher_process.is_running(), "the launcher itself does not watch the worker"
    finally:
        process.kill()
        for p in tree:  # the launcher was handed to init when the worker died: not our child
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


# --- Slow: real two-process DPO jobs ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db
def test_a_dpo_job_trains_on_two_processes_and_reports_once(
    project, tiny_model, tmp_path, rows, accelerate_config, child_lines
):
    job = dpo_job(project, tiny_model, tmp_path, max_steps=3)
    status = runner.job_run(job_id=job.id, worker="test")
    job.refresh_from_db()
    assert status == Status.SUCCEEDED, job.error + job.log_tail

    printed = messages(child_lines)
    train_steps = [m["step"] for m in printed if "loss" in m.get("metrics", {})]
    assert train_steps == [1, 2, 3], "one progress stream: rank 1 printed nothing"
    assert sum("final" in m for m in printed) == 1
    assert [m["step"] for m in job.metrics if "loss" in m] == [1, 2, 3]
    # Two processes shared each step: BATCH rows each, so an epoch is half as many steps.
    first = next(m for m in job.metrics if "epoch" in m)
    assert first["epoch"] == pytest.approx(2 * BATCH / ROWS)
    assert job.output_model.role == "policy" and job.step == 3
    assert (Path(job.output_dir) / "model" / "prefloop_config.json").is_file()


@pytest.mark.slow
@pytest.mark.django_db
def test_a_cancelled_two_process_job_stops_all_ranks_at_one_step(
    project, tiny_model, tmp_path, rows, accelerate_config, monkeypatch
):
    from trainer import services

    # The cancel arrives once two steps are recorded; asked from the runner's own loop, so no
    # second thread shares the (SQLite in-memory) test database.
    monkeypatch.setattr(
        services,
        "job_cancel_requested",
        lambda *, job_id: TrainingJob.objects.get(id=job_id).step >= 2,
    )
    job = dpo_job(project, tiny_model, tmp_path, max_steps=100000)
    status = runner.job_run(job_id=job.id, worker="test")
    job.refresh_from_db()
    # Not killed after the grace period: both ranks agreed on the step, saved and returned.
    assert status == Status.CANCELLED, job.error + job.log_tail
    assert not job.error and 2 <= job.step < 100000
    assert list((Path(job.output_dir) / "model").glob("checkpoint-*")), "no checkpoint saved"


@pytest.mark.slow
def test_killing_a_two_process_job_kills_every_rank(tiny_model, tmp_path, accelerate_config):
    psutil = pytest.importorskip("psutil")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    rows_file = job_dir / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(row) + "\n" for row in preference_rows()))
    config = {"model_name_or_path": tiny_model, "max_steps": 100000, "batch_size": BATCH}
    spec = {"kind": "dpo", "config": {**config, "device": "cpu", "save_steps": 0}}
    spec.update(rows_file=str(rows_file), output_dir=str(job_dir / "model"))
    (job_dir / "job.json").write_text(json.dumps(spec))

    child = runner._start(job_dir, "dpo")
    try:
        deadline = time.monotonic() + 180
        for line in child.stdout:  # wait until training runs on both ranks
            if line.startswith('{"step"') or time.monotonic() > deadline:
                break
        tree = [psutil.Process(pid) for pid in runner._descendants(child.pid)]
        ranks = [p for p in tree if "trainer.job_child" in " ".join(p.cmdline())]
        assert len(ranks) == 2, [p.cmdline() for p in tree]
        # torch's launcher gives each rank a session of its own: a group kill alone misses them.
        assert all(os.getpgid(p.pid) != child.pid for p in ranks)

        runner._kill(child)
        child.wait(timeout=10)
        # Sooner than the ranks' own orphan check (every 2 s) would have them exit.
        assert all(exited(psutil, p, timeout=1.5) for p in tree)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)


# --- Slow: real two-process online RL jobs (RLOO, GRPO), each with its own config -----------

PROMPTS = 16
GENERATIONS = 2


@pytest.fixture(scope="module")
def tiny_reward_model(tiny_model, tmp_path_factory):
    from trainer.algorithms.reward import RewardConfig, train

    out = tmp_path_factory.mktemp("rm") / "rm"
    config = RewardConfig(
        model_name_or_path=tiny_model, max_steps=2, batch_size=4, save_steps=0, device="cpu"
    )
    train(config, preference_rows()[:8], out, val_rows=[])
    return str(out)


@pytest.fixture
def prompt_rows(monkeypatch):
    lines = [
        (json.dumps({"prompt": f"Say something {i}."}) + "\n").encode() for i in range(PROMPTS)
    ]
    monkeypatch.setattr(snapshots, "snapshot_chunks", lambda job: iter(lines))


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_an_online_rl_job_trains_on_two_processes_with_its_own_config(
    kind, project, tiny_model, tiny_reward_model, tmp_path, prompt_rows, job_accelerate_config,
    child_lines,
):  # fmt: skip
    config = {
        "model_name_or_path": tiny_model,
        "reward_model_path": tiny_reward_model,
        "num_generations": GENERATIONS,
        "max_completion_length": 8,
        "batch_size": BATCH,
        "max_steps": 2,
        "save_steps": 0,
        "device": "cpu",
        "accelerate_config": str(job_accelerate_config),
    }
    job = TrainingJob.objects.create(
        project=project,
        kind=kind,
        output_dir=str(tmp_path / "job"),
        config=validate_config(kind=kind, config=config, input_model=None),
    )
    status = runner.job_run(job_id=job.id, worker="test")
    job.refresh_from_db()
    assert status == Status.SUCCEEDED, job.error + job.log_tail

    printed = messages(child_lines)
    train_steps = [m["step"] for m in printed if "loss" in m.get("metrics", {})]
    assert train_steps == [1, 2], "one progress stream: rank 1 printed nothing"
    assert sum("final" in m for m in printed) == 1
    assert [m["step"] for m in job.metrics if "loss" in m] == [1, 2]
    # The job's config (two processes) won over the worker's (one): each step took BATCH
    # completions on each rank, so an epoch of PROMPTS * GENERATIONS completions is half as long.
    first = next(m for m in job.metrics if "epoch" in m)
    assert first["epoch"] == pytest.approx(2 * BATCH / (PROMPTS * GENERATIONS))
    model = Path(job.output_dir) / "model"
    assert json.loads((model / "prefloop_config.json").read_text())["algorithm"] == kind
    assert (model / "model.safetensors").is_file()
    assert not list(model.glob("checkpoint-*")), "save_steps=0: only the final model"
    assert job.output_model.role == "policy" and job.step == 2
    # The launch option stays out of the algorithm's config (it would be an unknown field).
    assert (
        "accelerate_config"
        not in json.loads((Path(job.output_dir) / "job.json").read_text())["config"]
    )


@pytest.mark.django_db
def test_the_launch_form_offers_the_field_and_explains_a_bad_accelerate_config(
    client, project, alice, tmp_path
):
    from django.urls import reverse

    from tests.trainer.test_job_forms import defaults_as_posted

    client.force_login(alice)
    url = reverse("training_job_new", args=[project.id, "grpo"])
    assert 'id="config-accelerate_config"' in client.get(url).content.decode()
    (tmp_path / "list.yaml").write_text("- 1\n")
    posted = defaults_as_posted("grpo", {}) | {
        "config__model_name_or_path": "/models/policy",
        "config__reward_model_path": "/models/rm",
        "config__accelerate_config": str(tmp_path / "list.yaml"),
    }
    response = client.post(url, posted)
    assert response.status_code == 200 and not TrainingJob.objects.exists()
    assert "is not an accelerate config" in response.content.decode()
    ppo = reverse("training_job_new", args=[project.id, "ppo"])
    assert 'id="config-accelerate_config"' not in client.get(ppo).content.decode()


def test_the_documented_accelerate_configs_are_accepted_by_jobs_and_by_accelerate(tmp_path):
    """docs/training.md's example files (2 GPUs, DeepSpeed ZeRO-2) parse as accelerate configs
    and pass a job's validation; they are not launched here (no GPU, no deepspeed)."""
    import re

    from accelerate.commands.config.config_args import load_config_from_file

    text = (ROOT / "docs" / "training.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    found = {}
    for i, block in enumerate(blocks):
        path = tmp_path / f"example-{i}.yaml"
        path.write_text(block)
        config = {"model_name_or_path": "/m", "accelerate_config": str(path)}
        assert validate_config(kind="sft", config=config, input_model=None)["accelerate_config"]
        parsed = load_config_from_file(str(path))
        found[(parsed.distributed_type.value, parsed.num_processes)] = parsed
    assert ("MULTI_GPU", 2) in found
    assert found[("DEEPSPEED", 2)].deepspeed_config["zero_stage"] == 2


@pytest.mark.slow
@pytest.mark.django_db
def test_a_raft_job_samples_in_shards_and_fine_tunes_on_two_processes(
    project, tiny_model, tiny_reward_model, tmp_path, prompt_rows, job_accelerate_config,
    child_lines,
):  # fmt: skip
    from trainer.algorithms.raft import ROUND_FILENAME

    config = {
        "model_name_or_path": tiny_model,
        "reward_model_path": tiny_reward_model,
        "iterations": 2,
        "num_samples": 4,
        "max_new_tokens": 6,
        "sft_batch_size": 2,
        "device": "cpu",
        "accelerate_config": str(job_accelerate_config),
    }
    job = TrainingJob.objects.create(
        project=project,
        kind="raft",
        output_dir=str(tmp_path / "job"),
        config=validate_config(kind="raft", config=config, input_model=None),
    )
    status = runner.job_run(job_id=job.id, worker="test")
    job.refresh_from_db()
    assert status == Status.SUCCEEDED, job.error + job.log_tail

    printed = messages(child_lines)
    assert [m["step"] for m in printed if "step" in m] == [1, 2], "rank 1 printed nothing"
    assert sum("final" in m for m in printed) == 1
    rounds = [m for m in job.metrics if "sft_loss" in m]
    assert [m["step"] for m in rounds] == [1, 2]
    # Two processes sampled (each its share of the prompts) and fine-tuned together.
    assert all(m["processes"] == 2 for m in rounds)
    model = Path(job.output_dir) / "model"
    assert json.loads((model / "prefloop_config.json").read_text())["algorithm"] == "raft"
    # Only the newest round's directory is kept, written once with its round file.
    (last,) = model.glob("iteration-*")
    assert last.name == "iteration-1" and (last / ROUND_FILENAME).is_file()
    assert job.output_model.role == "policy" and job.step == 2


@pytest.mark.django_db
def test_a_sampled_nul_character_does_not_fail_the_jobs_metrics(project, tmp_path):
    """A policy can sample any token, NUL included; PostgreSQL's jsonb cannot store it."""
    import queue
    from collections import deque

    from trainer import services

    job = dpo_job(project, "/m", tmp_path)
    TrainingJob.objects.filter(id=job.id).update(status=Status.RUNNING, worker="w")
    lines: queue.Queue = queue.Queue()
    sample = {"prompt": "p", "response": "der\x00x", "reward": 0.5}
    lines.put(json.dumps({"step": 1, "total": 2, "metrics": {"samples": [sample]}}) + "\n")
    lines.put(None)
    state = {"step": None, "total": None, "final": None, "error": None, "started": 0.0}
    metrics, eof = runner._drain(lines, deque(), state)
    assert eof
    services.job_heartbeat(
        job_id=job.id, worker="w", step=1, total=2, new_metrics=metrics, log_tail=None
    )
    job.refresh_from_db()
    assert job.metrics[0]["samples"][0]["response"] == "der\ufffdx"
