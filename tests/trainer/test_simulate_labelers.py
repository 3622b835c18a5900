"""simulate_labelers: labeler processes answering over HTTP against a live server.

The server is pytest-django's live_server (a real HTTP server in a thread of the test
process); the labelers are forked processes that know only its URL and their tokens, so
everything they do goes through the public API, as it would for people.

Several labelers at once need PostgreSQL: on SQLite the live server shares one in-memory
connection between its request threads, which is not safe for concurrent requests (the app
itself runs SQLite from a file, where this does not arise). One labeler runs on both.
"""

import io
import json
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from annotator.models import Annotation, Kind, Membership, Task
from annotator.services import SIMULATED_GROUP, annotation_submit, task_claim_next
from tests.factories import MembershipFactory, ProjectFactory, make_task

TARGET = "sun,garden"
GOOD = "The sun is warm over the garden today."
BAD = "It is raining and cold outside today."
MIDDLE = "The sun is out but it is cold today."


def rates_by_word_count(text: str, *, points: int) -> int:
    """A callable Likert oracle for --oracle module:function."""
    return max(1, min(points, len(text.split()) // 2))


def simulate(project, live_server, *extra: str, **options) -> str:
    out = io.StringIO()
    call_command(
        "simulate_labelers",
        "--project",
        str(project.id),
        "--url",
        live_server.url,
        "--seed",
        "1",
        *extra,
        stdout=out,
        **options,
    )
    return out.getvalue()


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent requests to live_server need PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def pairwise(alice):
    project = ProjectFactory(created_by=alice, kind=Kind.PAIRWISE, overlap=2)
    MembershipFactory(project=project, user=alice, role=Membership.Role.ADMIN)
    for i in range(8):
        # The good response first on even tasks, second on odd ones.
        make_task(project, texts=[GOOD, BAD] if i % 2 == 0 else [BAD, GOOD])
    return project


@pytest.mark.postgres
def test_it_drains_a_pairwise_queue_over_http_with_the_oracles_choices(
    postgres_only, live_server, transactional_db, pairwise, alice
):
    output = simulate(
        pairwise,
        live_server,
        "--count=3",
        "--oracle=target-words",
        f"--target-words={TARGET}",
        "--noise=0",
        "--stop-when-empty",
    )

    tasks = Task.objects.filter(project=pairwise)
    assert all(t.annotation_count == 2 and t.is_complete for t in tasks)
    answers = Annotation.objects.filter(task__project=pairwise).select_related("chosen")
    assert answers.count() == 16
    assert all(a.is_simulated for a in answers)
    assert {a.chosen.text for a in answers} == {GOOD}  # noise 0: always the oracle's choice
    # Three users of their own, simulated, labelers of the project, who shared the work.
    labelers = get_user_model().objects.filter(username__startswith=f"sim-{pairwise.id}-")
    assert sorted(u.username for u in labelers) == [f"sim-{pairwise.id}-{n}" for n in (1, 2, 3)]
    for user in labelers:
        assert user.groups.filter(name=SIMULATED_GROUP).exists()
        assert not user.has_usable_password()
        assert Membership.objects.get(project=pairwise, user=user).role == Membership.Role.LABELER
    assert set(answers.values_list("labeler__username", flat=True)) == {
        u.username for u in labelers
    }
    assert "16 annotations by 3 labeler(s); errors: none" in output

    # The raw export says so too.
    rows = export_raw(live_server, pairwise, alice)
    assert len(rows) == 16 and all(row["is_simulated"] is True for row in rows)


def export_raw(live_server, project, user) -> list[dict]:
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    request = urllib.request.Request(  # noqa: S310 -- the test's own server
        f"{live_server.url}/api/v1/projects/{project.id}/export/?schema=raw&aggregate=all",
        headers={"Authorization": f"Token {token.key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return [json.loads(line) for line in response.read().splitlines() if line.strip()]


@pytest.mark.postgres
def test_it_stops_at_the_total_annotation_budget(
    postgres_only, live_server, transactional_db, pairwise
):
    output = simulate(
        pairwise,
        live_server,
        "--count=3",
        "--oracle=target-words",
        f"--target-words={TARGET}",
        "--max-annotations=5",
    )
    assert Annotation.objects.filter(task__project=pairwise).count() == 5
    assert "5 annotations by 3 labeler(s)" in output


def test_it_scores_likert_tasks_with_a_callable_oracle(live_server, transactional_db, alice):
    project = ProjectFactory(created_by=alice, kind=Kind.LIKERT, likert_points=5)
    for text in (GOOD, "Short one.", "a b c d e f g h i j k l"):
        make_task(project, texts=[text])
    simulate(
        project,
        live_server,
        "--count=1",
        f"--oracle={__name__}:rates_by_word_count",
        "--stop-when-empty",
    )
    scores = {
        a.task.completions.get().text: a.score
        for a in Annotation.objects.filter(task__project=project)
    }
    assert scores == {GOOD: 4, "Short one.": 1, "a b c d e f g h i j k l": 5}
    assert all(a.is_simulated and a.flags == [] for a in Annotation.objects.all())


def test_it_ranks_ranking_tasks_by_the_rule(live_server, transactional_db, alice):
    project = ProjectFactory(created_by=alice, kind=Kind.RANKING)
    for _ in range(3):
        make_task(project, texts=[BAD, GOOD, MIDDLE])
    simulate(
        project,
        live_server,
        "--count=1",
        "--oracle=ranking-target-words",
        f"--target-words={TARGET}",
        "--stop-when-empty",
    )
    answers = Annotation.objects.filter(task__project=project)
    assert answers.count() == 3
    for answer in answers:
        texts = {c.id: c.text for c in answer.task.completions.all()}
        assert [texts[i] for i in answer.ranking] == [GOOD, MIDDLE, BAD]


def test_it_refuses_an_unknown_project_or_oracle(transactional_db, pairwise):
    with pytest.raises(CommandError, match="No project"):
        call_command("simulate_labelers", "--project=nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="unknown oracle"):
        call_command(
            "simulate_labelers", f"--project={pairwise.id}", "--oracle=best", stdout=io.StringIO()
        )


def test_it_marks_a_simulated_labelers_answers_and_nobody_elses(db, pairwise, bob):
    from annotator.services import labeler_simulated_ensure

    MembershipFactory(project=pairwise, user=bob)
    token = labeler_simulated_ensure(project=pairwise, username="sim-x")
    assert labeler_simulated_ensure(project=pairwise, username="sim-x") == token  # idempotent
    for user in (token.user, bob):
        assignment = task_claim_next(project=pairwise, labeler=user)
        annotation_submit(task=assignment.task, labeler=user, answer={"choice": "a"})
    marked = dict(Annotation.objects.values_list("labeler__username", "labeler_kind"))
    assert marked == {"sim-x": "simulated", "bob": "human"}


def test_it_shows_a_simulated_badge_in_my_annotations(db, client, pairwise):
    from annotator.services import labeler_simulated_ensure

    user = labeler_simulated_ensure(project=pairwise, username="sim-y").user
    assignment = task_claim_next(project=pairwise, labeler=user)
    annotation_submit(task=assignment.task, labeler=user, answer={"choice": "a"})
    client.force_login(user)
    page = client.get(reverse("my_annotations", args=[pairwise.id]))
    assert page.status_code == 200
    assert b">simulated</span>" in page.content


def test_it_shows_which_annotations_are_simulated_in_the_admin(db, admin_client, pairwise):
    from annotator.services import labeler_simulated_ensure

    user = labeler_simulated_ensure(project=pairwise, username="sim-z").user
    assignment = task_claim_next(project=pairwise, labeler=user)
    annotation_submit(task=assignment.task, labeler=user, answer={"choice": "a"})
    page = admin_client.get(reverse("admin:annotator_annotation_changelist"))
    assert page.status_code == 200
    assert b"column-labeler_kind" in page.content and b"Simulated labeler" in page.content
    people_only = admin_client.get(
        reverse("admin:annotator_annotation_changelist") + "?labeler_kind__exact=human"
    )
    assert b"Simulated labeler</td>" not in people_only.content


@pytest.mark.postgres
def test_it_gives_each_labeler_its_own_noise_and_position_bias(
    postgres_only, live_server, transactional_db, pairwise, alice
):
    """sim-1 is always right, sim-2 always wrong, sim-3 always takes the left response."""
    type(pairwise).objects.filter(pk=pairwise.pk).update(overlap=3)
    Task.objects.filter(project=pairwise).update(overlap=3)
    output = simulate(
        pairwise,
        live_server,
        "--count=3",
        "--oracle=target-words",
        f"--target-words={TARGET}",
        "--noises=0,1,0",
        "--position-bias=0,0,1",
        "--seed=1",
        "--stop-when-empty",
    )
    assert "noise 0.0,1.0,0.0, position bias 0,0,1" in output
    answers = Annotation.objects.filter(task__project=pairwise).select_related("chosen", "labeler")
    assert answers.count() == 24
    by = {}
    for a in answers:
        by.setdefault(a.labeler.username.rsplit("-", 1)[1], []).append(a)
    assert {a.chosen.text for a in by["1"]} == {GOOD}
    assert {a.chosen.text for a in by["2"]} == {BAD}
    assert all(a.chosen_id == a.shown_order[0] for a in by["3"])
    assert {a.chosen.text for a in by["3"]} == {GOOD, BAD}  # left is either, by the lease


@pytest.mark.postgres
def test_with_pair_noise_every_labeler_gives_a_pair_the_same_answer(
    postgres_only, live_server, transactional_db, alice
):
    """--pair-noise: errors and tie-breaks are fixed per pair, so three labelers with their own
    seeds agree on every task, wrong ones included."""
    project = ProjectFactory(created_by=alice, kind=Kind.PAIRWISE, overlap=3, allow_tie=False)
    for i in range(8):
        make_task(project, texts=[f"{GOOD} ({i})", f"{BAD} ({i})"])  # 8 distinct pairs
        make_task(project, texts=[f"{BAD} ({i})", f"It is cold ({i})."])  # ties: no target word
    output = simulate(
        project, live_server, "--count=3", "--oracle=target-words", f"--target-words={TARGET}",
        "--pair-noise=0.5", "--seed=4", "--stop-when-empty",
    )  # fmt: skip
    assert "48 annotations by 3 labeler(s)" in output
    chosen: dict[int, set] = {}
    for a in Annotation.objects.filter(task__project=project).select_related("chosen"):
        chosen.setdefault(a.task_id, set()).add(a.chosen.text)
    assert all(len(texts) == 1 for texts in chosen.values())  # one answer per pair
    picked = [chosen[task_id].pop() for task_id in sorted(chosen)]  # decided, tie, decided..
    assert 0 < sum(t.startswith(BAD) for t in picked[0::2]) < 8  # some pairs believed wrong
    assert len({t.startswith(BAD) for t in picked[1::2]}) == 2  # ties broken both ways


def test_it_refuses_per_labeler_lists_of_the_wrong_length(transactional_db, pairwise):
    with pytest.raises(CommandError, match="2 values for 3 labelers"):
        call_command(
            "simulate_labelers", f"--project={pairwise.id}", "--count=3", "--noises=0,1",
            stdout=io.StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match="position_bias must be between 0 and 1"):
        call_command(
            "simulate_labelers", f"--project={pairwise.id}", "--position-bias=2",
            stdout=io.StringIO(),
        )  # fmt: skip
