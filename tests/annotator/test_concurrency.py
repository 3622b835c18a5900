"""The queue under real concurrency (issue #2): many labelers at once, each on its own
database connection, must never share a slot, overfill a task or lose an answer.

The PostgreSQL tests run real threads against the real database (`transaction=True`, so every
thread sees the others' commits). The SQLite test runs separate client processes against a
file database, because pytest-django's SQLite test database lives in memory.
"""

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from annotator import services
from annotator.exceptions import AlreadyAnswered, LeaseLost
from annotator.models import Annotation, Assignment, Membership, Project, Task
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task

LABELERS = 32
TASKS = 40
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@dataclass
class Trace:
    """What one labeler thread saw: its leases and the submits the server acknowledged."""

    # (task id, when the claim returned, when the submit was sent): the lease was certainly
    # live in between.
    leases: list[tuple[int, float, float]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _project_with_labelers(*, overlap: int, labelers: int, tasks: int, **fields):
    project = ProjectFactory(overlap=overlap, **fields)
    users = [UserFactory() for _ in range(labelers)]
    for user in users:
        MembershipFactory(project=project, user=user, role=Membership.Role.LABELER)
    for _ in range(tasks):
        make_task(project)
    return project, users


def _run_threads(target, args_per_thread: list[tuple]) -> list[Trace]:
    traces = [Trace() for _ in args_per_thread]
    start = threading.Barrier(len(args_per_thread))

    def run(trace: Trace, *args):
        try:
            start.wait(timeout=30)
            target(trace, *args)
        except Exception as exc:  # reported by the test, not swallowed
            trace.errors.append(repr(exc))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(trace, *args))
        for trace, args in zip(traces, args_per_thread, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a labeler thread hung"
    return traces


def _label_with_services(trace: Trace, project: Project, user) -> None:
    while True:
        assignment = services.task_claim_next(project=project, labeler=user)
        got = time.monotonic()
        if assignment is None:
            return
        task = assignment.task
        answer = {"choice": random.choice(["a", "b", "tie"])}
        sent = time.monotonic()
        result = services.annotation_submit(task=task, labeler=user, answer=answer)
        trace.leases.append((task.id, got, sent))
        trace.acked.append(result.annotation.id)


def _label_over_api(trace: Trace, project: Project, client) -> None:
    while True:
        resp = client.post(f"/api/v1/projects/{project.id}/tasks/next/")
        got = time.monotonic()
        if resp.status_code == 204:
            return
        assert resp.status_code == 200, resp.content
        task_id = resp.json()["id"]
        sent = time.monotonic()
        resp = client.post(f"/api/v1/tasks/{task_id}/annotations/", {"choice": "b"}, format="json")
        assert resp.status_code == 201, resp.content
        trace.leases.append((task_id, got, sent))
        trace.acked.append(resp.json()["id"])


def _max_simultaneous(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    live = peak = 0
    # Ends sort before starts at the same instant: touching intervals do not overlap.
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        live += delta
        peak = max(peak, live)
    return peak


def _assert_queue_drained_exactly(project: Project, traces: list[Trace]) -> None:
    errors = [e for t in traces for e in t.errors]
    assert errors == []
    overlap = project.overlap

    # No task was ever held by more than `overlap` labelers at once, as the threads saw it.
    by_task = defaultdict(list)
    for trace in traces:
        for task_id, got, sent in trace.leases:
            by_task[task_id].append((got, sent))
    peaks = {task_id: _max_simultaneous(spans) for task_id, spans in by_task.items()}
    assert max(peaks.values()) <= overlap

    # No duplicate lease or answer per (task, labeler).
    assert not (
        Assignment.objects.values("task", "labeler").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert not (
        Annotation.objects.values("task", "labeler").annotate(n=Count("id")).filter(n__gt=1)
    )

    # No overshoot, no shortfall: every task has exactly `overlap` answers and knows it. No
    # lease expired here, so every lease ended in an answer.
    tasks = Task.objects.filter(project=project).annotate(
        real=Count("annotations", distinct=True), leases=Count("assignments", distinct=True)
    )
    assert tasks.count() == TASKS
    for task in tasks:
        assert (task.real, task.annotation_count, task.leases) == (overlap,) * 3, task.id
        assert task.is_complete

    # No lost or phantom submissions: what was acknowledged is exactly what is stored.
    acked = [a for t in traces for a in t.acked]
    assert len(acked) == len(set(acked)) == TASKS * overlap
    stored = set(Annotation.objects.filter(task__project=project).values_list("id", flat=True))
    assert set(acked) == stored
    assert sum(len(t.leases) for t in traces) == len(stored)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [1, 2, 3])
def test_it_drains_the_queue_exactly_with_32_labelers_on_services(postgres_only, overlap):
    project, users = _project_with_labelers(overlap=overlap, labelers=LABELERS, tasks=TASKS)

    traces = _run_threads(_label_with_services, [(project, user) for user in users])

    _assert_queue_drained_exactly(project, traces)
    # Everyone got work: the queue spreads, it does not serialise on one labeler.
    assert sum(1 for t in traces if t.leases) > LABELERS // 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("overlap", [1, 2, 3])
def test_it_drains_the_queue_exactly_with_32_labelers_over_the_api(postgres_only, overlap):
    project, users = _project_with_labelers(overlap=overlap, labelers=LABELERS, tasks=TASKS)
    clients = [api_client_for(user) for user in users]

    traces = _run_threads(_label_over_api, [(project, client) for client in clients])

    _assert_queue_drained_exactly(project, traces)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_gives_one_lease_to_a_labeler_clicking_next_from_many_tabs(postgres_only):
    project, (bob,) = _project_with_labelers(overlap=1, labelers=1, tasks=20)
    got: list[int] = []

    def click(trace: Trace) -> None:
        got.append(services.task_claim_next(project=project, labeler=bob).task_id)

    traces = _run_threads(click, [() for _ in range(8)])

    assert [e for t in traces for e in t.errors] == []
    assert len(set(got)) == 1
    assert Assignment.objects.filter(labeler=bob).count() == 1


@contextmanager
def _claim_held_open(project, user):
    """Another labeler's claim, its transaction kept open (task rows locked) until the
    yielded event is set (at the latest when the block ends)."""
    held, release = threading.Event(), threading.Event()

    def claim() -> None:
        try:
            with transaction.atomic():
                services.task_claim_next(project=project, labeler=user)
                held.set()
                release.wait(timeout=30)
        finally:
            held.set()
            connection.close()

    other = threading.Thread(target=claim)
    other.start()
    try:
        assert held.wait(timeout=30)
        yield release
    finally:
        release.set()
        other.join(timeout=30)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_last_task_is_not_hidden_from_a_labeler_while_another_claims_it(postgres_only):
    """SKIP LOCKED passes over the task another claim is leasing; the queue must not call
    that "nothing left" while the task still has room for this labeler (overlap 2)."""
    project, (alice, bob) = _project_with_labelers(overlap=2, labelers=2, tasks=1)
    with _claim_held_open(project, alice) as release:
        threading.Timer(0.05, release.set).start()  # alice's claim commits while bob asks
        mine = services.task_claim_next(project=project, labeler=bob)
    assert mine is not None
    assert Assignment.objects.filter(task=mine.task).count() == 2  # alice's and bob's


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_that_stays_held_is_waited_for_only_briefly(postgres_only):
    project, (alice, bob) = _project_with_labelers(overlap=2, labelers=2, tasks=1)
    with _claim_held_open(project, alice) as release:
        mine = services.task_claim_next(project=project, labeler=bob)
        still_held = not release.is_set()
    assert (mine, still_held) == (None, True)  # "nothing now"; asking again later gets it
    assert services.task_claim_next(project=project, labeler=bob) is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_stores_one_answer_when_a_labeler_submits_from_many_tabs_at_once(postgres_only):
    project, (bob,) = _project_with_labelers(overlap=2, labelers=1, tasks=1)
    task = services.task_claim_next(project=project, labeler=bob).task
    outcomes: list[tuple[str, int]] = []

    def submit(trace: Trace, choice: str) -> None:
        try:
            result = services.annotation_submit(task=task, labeler=bob, answer={"choice": choice})
            outcomes.append(("stored", result.annotation.id))
        except AlreadyAnswered as exc:
            outcomes.append(("already", exc.annotation_id))

    traces = _run_threads(submit, [(random.choice("ab"),) for _ in range(16)])

    assert [e for t in traces for e in t.errors] == []
    stored = Annotation.objects.get(task=task, labeler=bob)  # exactly one
    assert sorted(kind for kind, _ in outcomes) == ["already"] * 15 + ["stored"]
    assert {annotation_id for _, annotation_id in outcomes} == {stored.id}
    task.refresh_from_db()
    assert (task.annotation_count, task.is_complete) == (1, False)
    assert Assignment.objects.get(task=task, labeler=bob).status == Assignment.Status.SUBMITTED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_returns_expired_leases_to_the_queue_under_concurrency(postgres_only):
    tasks = 16
    # Long enough that every quitter's lease is still live when the first check runs, even
    # on a busy machine; the test then waits for the real expiry.
    project, users = _project_with_labelers(
        overlap=1, labelers=tasks + 8, tasks=tasks, lease_seconds=3
    )
    quitters, finishers = users[:tasks], users[tasks:]
    held: dict[int, int] = {}

    def claim_and_walk_away(trace: Trace, user) -> None:
        held[user.id] = services.task_claim_next(project=project, labeler=user).task_id

    traces = _run_threads(claim_and_walk_away, [(u,) for u in quitters])
    assert [e for t in traces for e in t.errors] == []
    assert sorted(held.values()) == sorted(Task.objects.values_list("id", flat=True))
    # While the leases are live nobody else gets anything.
    assert services.task_claim_next(project=project, labeler=finishers[0]) is None

    last_expiry = max(Assignment.objects.values_list("expires_at", flat=True))
    time.sleep(max(0.0, (last_expiry - timezone.now()).total_seconds()) + 0.1)
    traces = _run_threads(_label_with_services, [(project, u) for u in finishers])
    assert [e for t in traces for e in t.errors] == []
    assert Annotation.objects.count() == tasks
    assert not Task.objects.filter(is_complete=False).exists()
    assert not Annotation.objects.filter(labeler__in=quitters).exists()

    # The quitters come back too late: told so, and nothing is stored for them.
    late: list[str] = []

    def submit_late(trace: Trace, user) -> None:
        task = Task.objects.get(pk=held[user.id])
        try:
            services.annotation_submit(task=task, labeler=user, answer={"choice": "a"})
        except LeaseLost:
            late.append("lost")

    traces = _run_threads(submit_late, [(u,) for u in quitters])
    assert [e for t in traces for e in t.errors] == []
    assert late == ["lost"] * tasks
    assert Annotation.objects.count() == tasks
    counts = Counter(Task.objects.values_list("annotation_count", flat=True))
    assert counts == {1: tasks}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_late_answer_while_nobody_else_took_the_task(postgres_only):
    project, (bob, carol) = _project_with_labelers(overlap=1, labelers=2, tasks=1, lease_seconds=1)
    assignment = services.task_claim_next(project=project, labeler=bob)
    time.sleep(1.1)

    traces = _run_threads(
        lambda trace: trace.acked.append(
            services.annotation_submit(
                task=assignment.task, labeler=bob, answer={"choice": "a"}
            ).late
        ),
        [()],
    )

    assert traces[0].errors == [] and traces[0].acked == [True]
    assert services.task_claim_next(project=project, labeler=carol) is None


def _sqlite_clients(*args: str, db: Path) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "DJANGO_SETTINGS_MODULE": "webapp.test_settings",
    }
    out = subprocess.run(
        [sys.executable, "-m", "tests.annotator.sqlite_clients", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("overlap", [1, 3])
def test_it_drains_the_queue_exactly_with_concurrent_clients_on_sqlite(tmp_path, overlap):
    db = tmp_path / "queue.sqlite3"
    processes, threads = 3, 2
    setup = _sqlite_clients(
        "setup", f"--overlap={overlap}", "--tasks=30", f"--labelers={processes * threads}", db=db
    )
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}
    env["DJANGO_SETTINGS_MODULE"] = "webapp.test_settings"
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.annotator.sqlite_clients",
                "label",
                f"--project={setup['project']}",
                f"--users={','.join(map(str, setup['users'][i::processes]))}",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    acked, leases = [], []
    for client in clients:
        stdout, stderr = client.communicate(timeout=300)
        assert client.returncode == 0, stderr[-3000:]
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["errors"] == []
        acked += result["acked"]
        leases += result["leases"]

    check = _sqlite_clients("check", f"--project={setup['project']}", db=db)

    assert check["duplicate_leases"] == check["duplicate_answers"] == 0
    assert check["tasks"] == 30
    assert check["exact"] == 30  # annotations == annotation_count == leases == overlap
    assert len(acked) == len(set(acked)) == 30 * overlap
    assert sorted(acked) == check["annotation_ids"]
    spans = defaultdict(list)
    for task_id, got, sent in leases:
        spans[task_id].append((got, sent))
    assert max(_max_simultaneous(s) for s in spans.values()) <= overlap
