"""The API answers as its OpenAPI schema says (/api/schema/), checked by Schemathesis.

A short, seeded run over every operation, as a project admin with a token: valid requests
(positive) and invalid ones (negative). It fails on any 5xx, any status code, content type,
header or body the schema does not describe, an invalid request accepted, or a valid one
refused. Path ids point at real objects of the project most of the time, so the operations
are exercised past their 404.

One refinement of "a valid request is accepted": a schema states shapes, not what exists. A
400 that names only fields referring to the project's own things (an unknown username, an
aspect or flag the project does not have, a model id of another project, a job config the
kind does not take, a file with no lines) is what the schema's descriptions promise, so a
schema-valid request may get it; a 400 naming any other field fails the run.
"""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.transport.serialization import serialize_binary

from annotator import services
from annotator.models import Kind, Membership
from tests.conftest import api_client_for
from tests.factories import MembershipFactory, ProjectFactory, UserFactory, make_task
from trainer.judging.services import judge_create
from trainer.models import LoopPolicy, ModelVersion, TrainingJob
from webapp.wsgi import application


@schemathesis.serializer("application/jsonl", "text/csv", "application/vnd.apache.parquet")
def raw_file(ctx, value) -> bytes:
    """The import's file bodies, sent as they are."""
    return serialize_binary(value)


schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    deterministic=True,
    # Text never takes NUL (PostgreSQL cannot store it): every such field answers 400, as
    # docs/api.md says; the schema's string type cannot say so.
    allow_x00=False,
)


pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(autouse=True)
def same_connection():
    """Requests go through the WSGI app, in this test's transaction: keep Django from closing
    the connection at each request's start and end (its test client does the same)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world():
    admin = UserFactory(username="root", is_staff=True)
    labeler = UserFactory(username="lab")
    project = ProjectFactory(kind=Kind.PAIRWISE, overlap=2)
    MembershipFactory(project=project, user=admin, role=Membership.Role.ADMIN)
    MembershipFactory(project=project, user=labeler, role=Membership.Role.LABELER)
    for _ in range(3):
        make_task(project)
    # A task the admin holds, so answers and skips get past "not yours" (409).
    held = services.task_claim_next(project=project, labeler=admin).task
    policy = ModelVersion.objects.create(project=project, name="base", role="policy", path="/m")
    job = TrainingJob.objects.create(project=project, kind="reward", config={})
    LoopPolicy.objects.create(project=project, base_policy=policy)
    judge = judge_create(project=project, name="judge", backend="callable", callable_path="m:f")
    token = api_client_for(admin)._credentials["HTTP_AUTHORIZATION"]
    return {
        "token": token,
        "ids": {
            "project_id": project.id,
            "task_id": held.id,
            "job_id": job.id,
            "judge_id": judge.id,
        },  # fmt: skip
    }


# operationId -> the 400 body's keys that name a reference to the project's state.
REFERENCES = {
    "v1_projects_members_create": {"username"},
    # A source given two weights (source_weight=ai:1&source_weight=ai:2): no schema can say.
    "v1_projects_export_retrieve": {"aspect", "harmful_flag", "source_weight"},
    "v1_projects_export_summary_retrieve": {"aspect", "harmful_flag", "source_weight"},
    "v1_projects_import_create": {"detail", "errors"},
    "v1_projects_import_preferences_create": {"detail", "errors"},
    "v1_jobs_create": {"detail", "field", "input_model", "reward_model"},
    # sft_first: refused in a project with no demonstration or edit tasks.
    "loop_update": {
        "base_policy",
        "policy_config",
        "reward_config",
        "reward_source_weights",
        "generate_config",
        "judge",
        "sft_first",
        "sft_config",
    },  # fmt: skip
    # The answer's fields depend on the task's project (ANSWER_SCHEMA says how).
    "v1_tasks_annotations_create": {"detail", "field"},
    # A gold or adjudicated answer's shape depends on the task's kind and completions.
    "v1_tasks_gold_update": {"gold"},
    "v1_tasks_adjudication_update": {"answer"},
    # A judge's settings depend on its backend (an endpoint needs a URL and a model, a
    # callable its path), its name on the project's other judges, a reward model on the
    # project's models.
    "v1_projects_judges_create": {"detail", "field", "reward_model"},
    "v1_judges_partial_update": {"detail", "field", "reward_model"},
    # A strategy name the project already has; a log file with bad lines.
    "v1_projects_strategies_create": {"name"},
    "v1_projects_strategies_partial_update": {"name"},
    "v1_projects_strategies_import_create": {"detail", "errors"},
}


def declared_properties(case) -> set[str]:
    """The property names the operation's JSON request body declares."""
    body = case.operation.definition.raw.get("requestBody", {})
    found = body.get("content", {}).get("application/json", {}).get("schema", {})
    ref = found.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        components = case.operation.schema.raw_schema.get("components", {}).get("schemas", {})
        found = components.get(ref.rsplit("/", 1)[1], {})
    return set(found.get("properties", {}))


def valid_requests_are_accepted(ctx, response, case):
    """positive_data_acceptance, with the state-dependent 400s above allowed."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code < 400 or response.status_code in {401, 403, 404, 409, 429}:
        return None
    allowed = REFERENCES.get(case.operation.definition.raw.get("operationId"), set())
    body = response.json() if response.status_code == 400 else {}
    if response.status_code == 400 and body and set(body) <= allowed:
        return None
    # {"detail": ..., "field": path}: the API's form of a 400 about one field. The JSON
    # parser's limits (no number past 64 bits, no nesting past 32: docs/api.md) hold in every
    # body, also inside free-form objects (a job config) and under keys the schema leaves open.
    if response.status_code == 400 and set(body) == {"detail", "field"}:
        top = str(body["field"]).split(".")[0]
        if top in allowed or top not in declared_properties(case):
            return None
    raise AssertionError(
        f"Schema-valid request rejected: {response.status_code} {response.text[:500]}"
    )


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_contract(case, world):
    for name, real in world["ids"].items():
        value = case.path_parameters.get(name) if case.path_parameters else None
        # Three in four integer ids become the real object's; the others stay and must 404.
        if isinstance(value, int) and value % 4:
            case.path_parameters[name] = real
    case.call_and_validate(
        headers={"Authorization": world["token"]},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[valid_requests_are_accepted],
    )
