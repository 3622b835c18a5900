"""The job launch form: one page per job kind, with the data it would train on.

Same access rules as the other training pages (trainer/views.py). The fields come from the
kind's config dataclass (trainer/forms.py); the newest registered models are preselected, so a
form launches with its defaults; what is missing or does not parse is said next to its field.
Under the dataset fields the form counts the rows the data gives (trainer/job_data.py),
refreshed over htmx as the fields change.
"""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotator.audit import AuditEntry, audit_record
from annotator.models import Project, Prompt
from annotator.views import login_required
from trainer import job_data, selectors, services
from trainer.configs import config_fields
from trainer.exceptions import JobError
from trainer.forms import config_form_fields, dataset_form_fields, parse_fields
from trainer.memory_check import MemoryView, job_memory_view
from trainer.models import ModelVersion, TrainingJob
from trainer.views import _launchable_kinds, _project_for_admin

Kind = TrainingJob.Kind


def _model_choices(request: HttpRequest, project: Project, kind: str) -> dict:
    versions = list(
        selectors.models_for_admin(request.user)
        .filter(project=project)
        .select_related(None)
        .defer("metrics", "config")
    )
    policies = [v for v in versions if v.role == ModelVersion.Role.POLICY]
    rewards = [v for v in versions if v.role == ModelVersion.Role.REWARD]
    names = {f["name"] for f in config_fields(kind)}
    return {
        # A reward model may also start from an earlier reward model.
        "input_model": policies + rewards if kind == Kind.REWARD else policies,
        "reward_model": rewards if "reward_model_path" in names else None,
    }


def _pick_model(choices: list[ModelVersion] | None, raw: str, errors: dict, field: str):
    if not raw or choices is None:
        return None
    model = next((m for m in choices if str(m.id) == raw), None)
    if model is None:
        errors[field] = "Pick a model of this project from the list."
    return model


# Which config field a picked model fills, and what to say when neither is given.
MODEL_FILLS = {
    "model_name_or_path": (
        "input_model",
        "Pick an input model above, or type a model id or path here.",
    ),
    "reward_model_path": (
        "reward_model",
        "Pick a reward model above, or type the path of a trained reward model here.",
    ),
}


def _default_picks(choices: dict) -> dict:
    """The newest policy as input model and the newest reward model as scorer, so a form
    with its defaults launches whenever the project has registered models."""
    policies = [m for m in choices["input_model"] if m.role == ModelVersion.Role.POLICY]
    inputs = policies or choices["input_model"]
    rewards = choices["reward_model"] or []
    return {
        "input_model": str(inputs[0].id) if inputs else "",
        "reward_model": str(rewards[0].id) if rewards else "",
    }


def _missing_required(fields, config: dict, picked_models: dict, choices: dict) -> None:
    """Put a message on each required config field that nothing gives a value."""
    for f in fields:
        if not f.required or f.error or config.get(f.name):
            continue
        model_field, message = MODEL_FILLS.get(f.name, ("", "This field is required."))
        if picked_models.get(model_field):
            continue
        if model_field and not choices.get(model_field):
            message = (
                "The project has no such model registered yet: register one on the Models "
                "page, or type a model id or path here."
            )
        f.error = message


def _data_context(project: Project, kind: str, dataset: dict, config: dict) -> dict:
    try:
        rows = job_data.dataset_count(project=project, kind=kind, dataset=dataset)
    except JobError as exc:
        return {"data_error": str(exc)}
    return {"data": job_data.data_size(kind=kind, rows=rows, config=config)}


def _memory(kind: str, config: dict, picked: dict) -> MemoryView:
    """The launch form's memory estimate: the config as it stands, a picked model's path
    where the config names none."""
    config = dict(config)
    for name, key in (("input_model", "model_name_or_path"), ("reward_model", "reward_model_path")):
        model = picked.get(name)
        if isinstance(model, ModelVersion) and not config.get(key):
            config[key] = model.path
    try:
        return job_memory_view(kind=kind, config=config)
    except (ValueError, TypeError, OSError):  # a half-typed config: no estimate yet
        return MemoryView(unchecked="no estimate for this config yet")


def _config_with_defaults(fields, config: dict) -> dict:
    return {f.name: f.default for f in fields} | config


@require_http_methods(["GET", "POST"])
@login_required
def job_new(request: HttpRequest, project_id: int, kind: str) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    if kind not in dict(_launchable_kinds()):
        raise Http404("No such job kind.")
    fields, dataset_fields = config_form_fields(kind), dataset_form_fields(kind)
    for f in fields:
        # validate_config refuses a job without these, whatever their dataclass default.
        f.required = f.required or f.name in MODEL_FILLS
    choices = _model_choices(request, project, kind)
    context = {
        "project": project,
        "kind": kind,
        "kind_label": Kind(kind).label,
        "kinds": _launchable_kinds(),
        "fields": fields,
        "dataset_fields": dataset_fields,
        "choices": choices,
        "picked": _default_picks(choices),
        "model_errors": {},
        "form_error": "",
        "splits": Prompt.Split.choices,
        "fills": {name: model for name, (model, _) in MODEL_FILLS.items()},
        "tab": "jobs",
    }
    if request.method == "GET":
        context |= _data_context(project, kind, {}, _config_with_defaults(fields, {}))
        picks = {
            name: next((m for m in choices[name] or [] if str(m.id) == chosen), None)
            for name, chosen in context["picked"].items()
        }
        context["memory"] = _memory(kind, _config_with_defaults(fields, {}), picks)
        return render(request, "trainer/job_new.html", context)

    config = parse_fields(fields, request.POST, "config")
    dataset = parse_fields(dataset_fields, request.POST, "dataset")
    errors: dict[str, str] = {}
    picked = {name: request.POST.get(name, "") for name in ("input_model", "reward_model")}
    input_model = _pick_model(choices["input_model"], picked["input_model"], errors, "input_model")
    reward_model = _pick_model(
        choices["reward_model"], picked["reward_model"], errors, "reward_model"
    )
    _missing_required(
        fields, config, {"input_model": input_model, "reward_model": reward_model}, choices
    )
    bad = [(name, name, error) for name, error in errors.items()]
    bad += [(f"dataset-{f.name}", f.name, f.error) for f in dataset_fields if f.error]
    bad += [(f"config-{f.name}", f.name, f.error) for f in fields if f.error]
    context |= {"picked": picked, "model_errors": errors, "bad_fields": bad}
    context["memory"] = _memory(
        kind,
        _config_with_defaults(fields, config),
        {"input_model": input_model, "reward_model": reward_model},
    )
    if not any(f.error for f in dataset_fields):
        context |= _data_context(project, kind, dataset, _config_with_defaults(fields, config))
    if bad:
        context["form_error"] = "Some fields need fixing; nothing was launched."
        return render(request, "trainer/job_new.html", context)
    try:
        job = services.job_create(
            project=project,
            kind=kind,
            config=config,
            dataset=dataset,
            created_by=request.user,
            input_model=input_model,
            reward_model=reward_model,
        )
    except JobError as exc:
        context["form_error"] = str(exc)
        return render(request, "trainer/job_new.html", context)
    audit_record(
        request=request,
        project=project,
        action=AuditEntry.Action.JOB_LAUNCH,
        target=f"job {job.id}",
        details={"kind": kind},
    )
    messages.success(request, f"{job.get_kind_display()} job #{job.id} launched.")
    return redirect("training_job", job_id=job.id)


@require_GET
@login_required
def job_new_data(request: HttpRequest, project_id: int, kind: str) -> HttpResponse:
    """The launch form's row count for the dataset and split fields as they stand."""
    project = _project_for_admin(request, project_id)
    if kind not in dict(_launchable_kinds()):
        raise Http404("No such job kind.")
    fields, dataset_fields = config_form_fields(kind), dataset_form_fields(kind)
    config = parse_fields(
        [f for f in fields if f.name in ("val_fraction", "seed")], request.GET, "config"
    )
    dataset = parse_fields(dataset_fields, request.GET, "dataset")
    context = {"project": project, "kind": kind}
    if any(f.error for f in dataset_fields):
        context["data_error"] = "Fix the dataset fields to see how many rows they give."
    else:
        context |= _data_context(project, kind, dataset, _config_with_defaults(fields, config))
    return render(request, "trainer/job_new.html#data-size", context)
