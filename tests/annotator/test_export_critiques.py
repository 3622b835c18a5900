"""The `critiques` schema: edit tasks' critiques, principles and revisions, one row per answer,
answered through the labeling service as a labeler would."""

import csv
import io

import pytest

from annotator.export import ExportParams, export_start
from annotator.models import Completion, Kind, Membership
from annotator.services import annotation_submit, task_claim_next
from tests.annotator.exportkit import labelers, run_export
from tests.factories import MembershipFactory, ProjectFactory, make_task

PRINCIPLE = "Do not state falsehoods"


def written(project, user, answer):
    lease = task_claim_next(project=project, labeler=user)
    return annotation_submit(task=lease.task, labeler=user, answer=answer).annotation


@pytest.fixture
def edits(db):
    project = ProjectFactory(kind=Kind.EDIT, principles=[PRINCIPLE, "Be kind"])
    (user,) = labelers(1)
    MembershipFactory(project=project, user=user, role=Membership.Role.LABELER)
    wrong = make_task(project, texts=["The sky is <b>green</b>."])
    chat = make_task(project, texts=["Hi."])
    chat.prompt.messages, chat.prompt.text = [{"role": "user", "content": "Greet me"}], ""
    chat.prompt.save()
    fine = make_task(project, texts=["Fine as it is."])
    revised = written(
        project, user,
        {"text": "The sky is blue.", "critique": "Wrong colour.", "principle": PRINCIPLE},
    )  # fmt: skip
    greeted = written(project, user, {"text": "Hello there!", "critique": "Too curt."})
    unchanged = written(project, user, {"text": "Fine as it is."})
    return project, user, (wrong, chat, fine), (revised, greeted, unchanged)


def test_it_gives_the_response_its_critique_and_the_revision(edits):
    project, user, (wrong, chat, fine), (revised, greeted, unchanged) = edits
    rows, _ = run_export(project, schema="critiques")
    (original,) = wrong.completions.all()
    revision = Completion.objects.get(prompt=wrong.prompt, text="The sky is blue.")
    assert rows[0] == {
        "prompt": wrong.prompt.text, "response": "The sky is <b>green</b>.",
        "critique": "Wrong colour.", "principle": PRINCIPLE, "revision": "The sky is blue.",
        "task_id": wrong.id, "prompt_id": wrong.prompt_id, "response_id": original.id,
        "revision_id": revision.id, "annotation_id": revised.id, "labeler": user.id,
        "round": None, "split": "train",
    }  # fmt: skip
    # A chat prompt is written out as in `preference`; a critique without a principle.
    assert (rows[1]["prompt"], rows[1]["critique"], rows[1]["principle"]) == (
        "user: Greet me\n\nassistant: ", "Too curt.", None,
    )  # fmt: skip
    # Left as it was and not criticised: still a row, with no critique and no revision id.
    assert (rows[2]["critique"], rows[2]["revision"], rows[2]["revision_id"]) == (
        None, "Fine as it is.", None,
    )  # fmt: skip
    assert [r["annotation_id"] for r in rows] == [revised.id, greeted.id, unchanged.id]


def test_only_edit_answers_are_rows_and_the_filters_apply(edits):
    project, user, _, _ = edits
    assert len(run_export(project, schema="critiques", labelers=(user.id + 1000,))[0]) == 0
    assert len(run_export(project, schema="critiques", split="eval")[0]) == 0
    demos = ProjectFactory(kind=Kind.DEMONSTRATION)
    MembershipFactory(project=demos, user=user, role=Membership.Role.LABELER)
    make_task(demos)
    written(demos, user, {"text": "A demonstration."})
    assert run_export(demos, schema="critiques")[0] == []


def test_csv_parquet_and_ids_false(edits):
    project, *_ = edits
    job = export_start(project=project, params=ExportParams(schema="critiques", format="csv"))
    table = list(csv.DictReader(io.StringIO(b"".join(job.chunks()).decode())))
    assert [r["critique"] for r in table] == ["Wrong colour.", "Too curt.", ""]
    import pyarrow.parquet as pq

    job = export_start(project=project, params=ExportParams(schema="critiques", format="parquet"))
    parquet = pq.read_table(io.BytesIO(b"".join(job.chunks()))).to_pylist()
    assert [r["principle"] for r in parquet] == [PRINCIPLE, None, None]
    without_ids, _ = run_export(project, schema="critiques", ids=False)
    assert list(without_ids[0]) == ["prompt", "response", "critique", "principle", "revision",
                                    "round", "split"]  # fmt: skip


def test_the_api_exports_critiques(edits, api_as):
    project, user, *_ = edits
    admin = labelers(2)[1]
    MembershipFactory(project=project, user=admin, role=Membership.Role.ADMIN)
    response = api_as(admin).get(f"/api/v1/projects/{project.id}/export/?schema=critiques")
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 3 and '"critique":"Wrong colour."' in lines[0]
