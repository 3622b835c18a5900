"""The judges page (docs/ai-judges.md): a project's AI judges, their judging jobs and what they
cost, a form to add one, and per judge: run, resume, change its rubric and mixing policy.

Project admins only (outsiders 404, labelers 403), as the other training pages. The page shows
the *name* of the environment variable that holds a key, never a key: none is stored.
"""

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotator.exceptions import ServiceError
from annotator.models import JudgeVerdict
from annotator.views import login_required
from trainer.algorithms.judges import DEFAULT_RUBRICS, PAIRWISE_RUBRIC, TEMPLATES
from trainer.exceptions import JobError
from trainer.judging import services as judging
from trainer.models import Judge, TrainingJob
from trainer.views import _project_for_admin

FORM_FIELDS = [f for f in judging.FIELDS if f not in ("rubrics", "principles", "reward_model")]


class JudgeForm(forms.ModelForm):
    rubric = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono"}),
        required=False,
        help_text="The judge's prompt for a pair: {prompt}, {response_a}, {response_b} and "
        "{principles} are filled in. Empty: the default. Templates: "
        + ", ".join(TEMPLATES)
        + ".",  # fmt: skip
    )
    likert_rubric = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}),
        required=False,
        label="Likert rubric",
        help_text="The prompt for one response's score: {prompt}, {response}, {points}, "
        "{flags} (the project's, numbered) and {principles}. Empty: the default. Not for a "
        "reward-model judge (its rewards have no scale) or a project with aspects.",
    )
    ranking_rubric = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono"}),
        required=False,
        label="Ranking rubric",
        help_text="The prompt for a ranking: {prompt}, {responses} (lettered A, B, ...), "
        "{count}, {letters} and {principles}. Empty: the default.",
    )
    api_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        required=False,
        max_length=1000,
        label="API key",
        help_text="Stored encrypted and never shown again; leave empty to keep the stored one. "
        "Or name a workers' environment variable in api_key_env instead.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Drop the stored API key")
    template = forms.ChoiceField(
        choices=[("", "(keep the rubric above)")] + [(k, k) for k in TEMPLATES],
        required=False,
        help_text="Start from a template (HHH aspects, constitutional principles) instead.",
    )

    class Meta:
        model = Judge
        fields = ["name", *FORM_FIELDS]

    def cleaned_fields(self) -> dict:
        data = {k: v for k, v in self.cleaned_data.items() if k in FORM_FIELDS}
        data |= {k: self.cleaned_data[k] for k in judging.SECRET_FIELDS if self.cleaned_data.get(k)}
        rubric = TEMPLATES.get(self.cleaned_data.get("template") or "") or self.cleaned_data.get(
            "rubric"
        )
        written = {
            "pairwise": rubric,
            "likert": self.cleaned_data.get("likert_rubric"),
            "ranking": self.cleaned_data.get("ranking_rubric"),
        }
        data["rubrics"] = {
            kind: text
            for kind, text in written.items()
            if text and text.strip() and text != DEFAULT_RUBRICS[kind]
        }
        return data


def _initial(judge: Judge | None) -> dict:
    return {
        "rubric": judging.rubric_of(judge, "pairwise") if judge else PAIRWISE_RUBRIC,
        "likert_rubric": judging.rubric_of(judge, "likert") if judge else DEFAULT_RUBRICS["likert"],
        "ranking_rubric": (
            judging.rubric_of(judge, "ranking") if judge else DEFAULT_RUBRICS["ranking"]
        ),
    }


def _page(project) -> dict:
    judges = list(
        Judge.objects.filter(project=project)
        .select_related("user")
        .annotate(
            verdicts=Count(
                "user__judge_verdicts", filter=Q(user__judge_verdicts__task__project=project)
            ),
            inconsistent=Count(
                "user__judge_verdicts", filter=Q(user__judge_verdicts__consistent=False)
            ),
            to_people=Count("user__judge_verdicts", filter=Q(user__judge_verdicts__to_people=True)),
        )
    )
    for judge in judges:
        usage = JudgeVerdict.objects.filter(labeler_id=judge.user_id).values_list(
            "usage", flat=True
        )
        judge.tokens = sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usage)
        judge.cost = sum(u.get("cost", 0) for u in usage)
        judge.jobs = list(
            TrainingJob.objects.filter(
                project=project, kind="judge", dataset__judge=judge.id
            ).order_by("-id")[:5]
        )
        judge.kinds = judging.judged_kinds(judge)
        judge.form = JudgeForm(instance=judge, prefix=f"j{judge.id}", initial=_initial(judge))
    return {"project": project, "judges": judges, "tab": "judges"}


@require_GET
@login_required
def judge_list(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    form = JudgeForm(prefix="new", initial=_initial(None))
    return render(request, "trainer/judges.html", {**_page(project), "form": form})


@require_POST
@login_required
def judge_new(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    form = JudgeForm(request.POST, prefix="new")
    if form.is_valid():
        try:
            judge = judging.judge_create(
                project=project, name=form.cleaned_data["name"], **form.cleaned_fields()
            )
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Judge {judge.name} added; its labeler is {judge.user}.")
            return redirect(reverse("training_judges", args=[project.id]))
    return render(request, "trainer/judges.html", {**_page(project), "form": form}, status=400)


def _judge(request: HttpRequest, project_id: int, judge_id: int) -> Judge:
    project = _project_for_admin(request, project_id)
    judge = Judge.objects.filter(project=project, id=judge_id).first()
    if judge is None:
        raise Http404("No such judge.")
    return judge


@require_POST
@login_required
def judge_action(request: HttpRequest, project_id: int, judge_id: int, action: str) -> HttpResponse:
    judge = _judge(request, project_id, judge_id)
    back = redirect(reverse("training_judges", args=[project_id]) + f"#judge-{judge.id}")
    if action == "run":
        try:
            job = judging.judge_run(
                judge=judge, created_by=request.user,
                include_complete=request.POST.get("include_complete") == "on",
            )  # fmt: skip
        except JobError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Judging job {job.id} queued.")
    elif action == "resume":
        judging.judge_resume(judge=judge)
        messages.success(request, f"Judge {judge.name} resumed.")
    elif action == "edit":
        form = JudgeForm(request.POST, instance=Judge.objects.get(id=judge.id),
                         prefix=f"j{judge.id}")  # fmt: skip
        if not form.is_valid():
            messages.error(
                request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            )
            return back
        try:
            judging.judge_update(judge=judge, **form.cleaned_fields())
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Judge {judge.name} saved.")
    else:
        raise Http404("No such action.")
    return back
