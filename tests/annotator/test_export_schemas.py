"""Each export schema on hand-made answers; expected rows are worked out in each test."""

from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.models import Annotation, Kind, Task, TaskCompletion
from tests.annotator.exportkit import (
    labelers,
    pairs_of,
    pick,
    prompt_for,
    rank,
    rate,
    run_export,
    task_over,
)
from tests.factories import ProjectFactory

HARMFUL = "Gives harmful advice"
OPINION = "Expresses moral judgment"


@pytest.fixture
def duo(db):
    return labelers(2)


@pytest.fixture
def likert_project(project):
    project.kind = Kind.LIKERT
    project.likert_points = 7
    project.save()
    return project


def likert_prompt(project, texts, text="Rate these"):
    """One prompt with one Likert task per completion; returns [(task, completion)]."""
    prompt = prompt_for(project, text)
    out = []
    for t in texts:
        task, (completion,) = task_over(prompt, [t], kind=Kind.LIKERT)
        out.append((task, completion))
    return out


def test_it_pairs_likert_completions_whose_mean_scores_differ(likert_project, duo):
    (tp, p), (tq, q), (tr, r) = likert_prompt(likert_project, ["p", "q", "r"])
    l1, l2 = duo
    rate(tp, l1, 6), rate(tp, l2, 5)  # mean 5.5
    rate(tq, l1, 3), rate(tq, l2, 6)  # mean 4.5
    rate(tr, l1, 5), rate(tr, l2, 6)  # mean 5.5

    rows, dropped = run_export(likert_project)

    # p-q: gap 1.0; of the 4 (p, q) score pairs, p is higher in 2 (6>3, 5>3) -> 0.5.
    # p-r: equal means, no pair. q-r: r by 1.0, r higher in 6>3, 5>3 -> 0.5.
    assert pairs_of(rows) == [("p", "q", 2, 0.5), ("r", "q", 2, 0.5)]
    assert [r["margin"] for r in rows] == [1.0, 1.0]
    assert {r["group"] for r in rows} == {f"p{tp.prompt_id}"}
    assert rows[0]["task_id"] is None and rows[0]["source"] == "likert"
    assert dropped == {"equal_scores": 1}


def test_it_pairs_each_labelers_likert_scores_with_aggregate_all(likert_project, duo):
    (tp, p), (tq, q) = likert_prompt(likert_project, ["p", "q"])
    l1, l2 = duo
    rate(tp, l1, 6), rate(tq, l1, 2)
    rate(tp, l2, 3), rate(tq, l2, 5)

    rows, _ = run_export(likert_project, aggregate="all")

    # l1 says p by 4, l2 says q by 2; each is one of the two labelers who rated both.
    assert pairs_of(rows) == [("p", "q", 2, 0.5), ("q", "p", 2, 0.5)]
    assert [(r["margin"], r["labelers"]) for r in rows] == [(4.0, [l1.id]), (2.0, [l2.id])]


def test_it_never_chooses_a_completion_flagged_harmful(likert_project, duo):
    (tp, p), (tq, q) = likert_prompt(likert_project, ["p", "q"])
    l1, l2 = duo
    rate(tp, l1, 7, flags=[HARMFUL])
    rate(tp, l2, 6)
    rate(tq, l1, 2, flags=[OPINION])
    rate(tq, l2, 3)

    rows, dropped = run_export(likert_project)
    assert rows == []
    assert dropped == {"harmful_chosen": 1}

    rows, _ = run_export(likert_project, allow_harmful_chosen=True)
    assert pairs_of(rows) == [("p", "q", 2, 1.0)]

    # Only the listed flags count: now q is harmful, p is not.
    rows, _ = run_export(likert_project, harmful_flags=(OPINION,))
    assert pairs_of(rows) == [("p", "q", 2, 1.0)]


def test_it_uses_one_aspect_or_the_mean_of_all(likert_project, duo):
    likert_project.aspects = ["helpful", "harmless"]
    likert_project.save()
    (tp, p), (tq, q) = likert_prompt(likert_project, ["p", "q"])
    rate(tp, duo[0], scores={"helpful": 7, "harmless": 1})  # mean 4
    rate(tq, duo[0], scores={"helpful": 2, "harmless": 4})  # mean 3

    assert pairs_of(run_export(likert_project)[0]) == [("p", "q", 1, 1.0)]
    assert pairs_of(run_export(likert_project, aspect="harmless")[0]) == [("q", "p", 1, 1.0)]


def test_it_writes_likert_answers_one_row_per_completion_and_labeler(likert_project, duo):
    likert_project.aspects = ["helpful", "harmless"]
    likert_project.save()
    ((task, completion),) = likert_prompt(likert_project, ["=SUM(A1)"])
    answer = rate(task, duo[0], scores={"helpful": 5, "harmless": 2}, flags=[OPINION], notes="meh")

    rows, _ = run_export(likert_project, schema="likert")

    common = {
        "prompt": "Rate these", "completion": "=SUM(A1)", "flags": [OPINION], "notes": "meh",
        "completion_id": completion.id, "task_id": task.id, "prompt_id": task.prompt_id,
        "labeler": duo[0].id, "annotation_id": answer.id, "round": None, "split": "train",
        "created_at": answer.created_at.isoformat(),
    }  # fmt: skip
    # With aspects, one row per aspect, in the project's aspect order.
    assert rows == [
        {**common, "score": 5, "aspect": "helpful"},
        {**common, "score": 2, "aspect": "harmless"},
    ]
    rows, _ = run_export(likert_project, schema="likert", aspect="harmless")
    assert [(r["aspect"], r["score"]) for r in rows] == [("harmless", 2)]


def test_it_writes_unpaired_labels_from_pairs_and_likert(project, duo):
    prompt = prompt_for(project, "Pick one")
    task, (a, b) = task_over(prompt, ["good", "bad"], kind=Kind.PAIRWISE)
    pick(task, duo[0], a)
    (tp, p), (tq, q), (tr, r), (ts, s) = likert_prompt(project, ["hi", "lo", "mid", "flagged"])
    rate(tp, duo[0], 6), rate(tp, duo[1], 5)  # 5.5 > 4: good
    rate(tq, duo[0], 2), rate(tq, duo[1], 5)  # 3.5 < 4: bad, one of two agrees
    rate(tr, duo[0], 3), rate(tr, duo[1], 5)  # exactly 4 on a 7-point scale: neither
    rate(ts, duo[0], 7, flags=[HARMFUL])  # harmful: bad whatever the score

    rows, dropped = run_export(project, schema="unpaired")

    got = [(r["completion"], r["label"], r["votes"], r["agreement"], r["source"]) for r in rows]
    assert got == [
        ("good", True, 1, 1.0, "pairwise"),
        ("bad", False, 1, 1.0, "pairwise"),
        ("hi", True, 2, 1.0, "likert"),
        ("lo", False, 2, 0.5, "likert"),
        ("flagged", False, 1, 1.0, "likert"),
    ]
    assert dropped == {"neutral": 1}
    assert rows[0]["task_id"] == task.id and rows[3]["task_id"] == tq.id
    assert run_export(project, schema="unpaired", likert_threshold=3)[0][4]["label"] is True


def test_it_writes_conversational_rows_for_chat_and_plain_prompts(project, duo):
    chat = prompt_for(project, messages=[{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Hi?"}])  # fmt: skip
    task, (a, b) = task_over(chat, ["Hello.", "Go away."], kind=Kind.PAIRWISE)
    pick(task, duo[0], a)
    plain = prompt_for(project, "2+2?")
    task2, (c, d) = task_over(plain, ["4", "5"], kind=Kind.PAIRWISE)
    pick(task2, duo[0], c)

    rows, _ = run_export(project, schema="preference-conversational")
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
        (
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
            [{"role": "assistant", "content": "Hello."}],
            [{"role": "assistant", "content": "Go away."}],
        ),
        (
            [{"role": "user", "content": "2+2?"}],
            [{"role": "assistant", "content": "4"}],
            [{"role": "assistant", "content": "5"}],
        ),
    ]
    # The standard form writes a chat prompt out as a transcript ending on the assistant cue.
    rows, _ = run_export(project)
    assert rows[0]["prompt"] == "system: Be brief.\n\nuser: Hi?\n\nassistant: "


def test_it_writes_one_row_per_ranked_task_in_consensus_order(project, duo):
    prompt = prompt_for(project, "Rank")
    task, (x, y, z) = task_over(prompt, ["x", "y", "z"], kind=Kind.RANKING, round_=1)
    third = labelers(3)[2]
    rank(task, duo[0], [x, y, z])
    rank(task, duo[1], [x, z, y])
    rank(task, third, [y, x, z])
    tied, (u, v) = task_over(prompt, ["u", "v"], kind=Kind.RANKING)
    rank(tied, duo[0], [u, v])
    rank(tied, duo[1], [v, u])

    rows, dropped = run_export(project, schema="ranking")

    # Mean positions x 1/3, y 1, z 5/3. Pairs agreeing with x>y>z: 2 + 3 + 2 of 9 judgements.
    assert rows == [{
        "prompt": "Rank", "ranking": ["x", "y", "z"], "ranking_ids": [x.id, y.id, z.id],
        "votes": 3, "agreement": 7 / 9, "task_id": task.id, "prompt_id": prompt.id,
        "labelers": sorted([duo[0].id, duo[1].id, third.id]), "round": 1, "split": "train",
    }]  # fmt: skip
    assert dropped == {"labelers_tied": 1}
    rows, _ = run_export(project, schema="ranking", aggregate="all")
    assert [r["ranking"] for r in rows] == [["x", "y", "z"], ["x", "z", "y"], ["y", "x", "z"],
                                            ["u", "v"], ["v", "u"]]  # fmt: skip


def test_it_writes_raw_annotations_as_stored(project, duo):
    prompt = prompt_for(project, "Q", split="eval")
    task, (a, b) = task_over(prompt, ["a", "b"], kind=Kind.PAIRWISE, round_=4)
    answer = pick(task, duo[0], b, strength=3)
    Annotation.objects.filter(pk=answer.pk).update(time_spent_ms=1234, notes="+1 sure")

    rows, _ = run_export(project, schema="raw")

    assert rows == [{
        "id": answer.id, "task_id": task.id, "prompt_id": prompt.id, "labeler": duo[0].id,
        "kind": "pairwise", "verdict": "preferred", "chosen_id": b.id, "rejected_id": a.id,
        "strength": 3, "score": None, "scores": None, "flags": [], "ranking": [],
        "notes": "+1 sure", "shown_order": [a.id, b.id], "time_spent_ms": 1234,
        "is_simulated": False, "created_at": answer.created_at.isoformat(), "round": 4,
        "split": "eval", "is_imported": False,
    }]  # fmt: skip


def test_it_filters_by_time_split_round_and_labeler(project, duo):
    l1, l2 = duo
    old, (a, _) = task_over(prompt_for(project, "old"), ["old-a", "old-b"], kind=Kind.PAIRWISE)
    new, (b, _) = task_over(
        prompt_for(project, "new", split="eval"), ["new-a", "new-b"], kind=Kind.PAIRWISE,
        round_=3,
    )  # fmt: skip
    first = pick(old, l1, a)
    pick(new, l2, b)
    cut = timezone.now() + timedelta(hours=1)
    Annotation.objects.filter(pk=first.pk).update(created_at=cut - timedelta(days=1))
    Annotation.objects.exclude(pk=first.pk).update(created_at=cut + timedelta(minutes=1))
    later = cut + timedelta(hours=1)

    def chosen(**params):
        return [r["chosen"] for r in run_export(project, until=later, **params)[0]]

    assert chosen() == ["old-a", "new-a"]
    assert chosen(since=cut) == ["new-a"]
    assert [r["chosen"] for r in run_export(project, until=cut)[0]] == ["old-a"]
    assert chosen(split="eval") == ["new-a"]
    assert chosen(round=3) == ["new-a"]
    assert chosen(labelers=(l1.id,)) == ["old-a"]


def test_it_never_reads_another_projects_rows(project, duo):
    other = ProjectFactory()
    task, (a, _) = task_over(prompt_for(other, "theirs"), ["x", "y"], kind=Kind.PAIRWISE)
    pick(task, duo[0], a)
    rank_task, (p, q) = task_over(prompt_for(other, "r"), ["p", "q"], kind=Kind.RANKING)
    rank(rank_task, duo[0], [p, q])

    for schema in ["preference", "ranking", "likert", "unpaired", "raw"]:
        assert run_export(project, schema=schema)[0] == []
    assert len(run_export(other, schema="raw")[0]) == 2


def test_it_never_ranks_a_completion_flagged_harmful_above_a_harmless_one(project, duo):
    prompt = prompt_for(project, "Rank")
    first, (x, y, z) = task_over(prompt, ["x", "y", "z"], kind=Kind.RANKING)
    rank(first, duo[0], [y, x, z])
    # Someone rated y on its own and flagged it.
    likert = Task.objects.create(project=project, prompt=prompt, kind=Kind.LIKERT)
    TaskCompletion.objects.create(task=likert, completion=y, position=0)
    rate(likert, duo[1], 1, flags=[HARMFUL])

    rows, dropped = run_export(project)
    # Of y>x, x>z and y>z only x>z survives: y may be rejected, never chosen.
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("x", "z")]
    assert dropped == {"harmful_chosen": 2}

    # A full ranking with y above anything is dropped; with y last it is kept.
    second = Task.objects.create(project=project, prompt=prompt, kind=Kind.RANKING)
    for position, completion in enumerate([x, y, z]):
        TaskCompletion.objects.create(task=second, completion=completion, position=position)
    rank(second, duo[0], [x, z, y])
    rows, dropped = run_export(project, schema="ranking")
    assert [r["ranking"] for r in rows] == [["x", "z", "y"]]
    assert dropped == {"harmful_chosen": 1}
