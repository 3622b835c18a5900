"""The loop page (issue #5): settings, controls, rounds as a timeline, win rates, leaderboard.

Same access rules as the other training pages (trainer/views.py): outsiders get 404, labelers
403. The page and its live part are one template (trainer/loop.html and its "loop-live"
partial: the timeline, the charts, the leaderboard and the reward models' accuracy); the live
part polls itself every 5 s with htmx while its numbers can still change (the loop is enabled,
or a job or a measurement is still to finish), and the answer that finds nothing left to
change is a 286, which stops the polling. Reads go through
trainer/loop/selectors.py, writes through trainer/loop/services.py and measure.py.
"""

import json

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotator.audit import AuditEntry, audit_record, plain
from annotator.models import Project
from annotator.views import login_required
from trainer import plots
from trainer.algorithms.acquisition import RULE_HELP
from trainer.loop import accuracy, efficiency, judgments, measure
from trainer.loop import selectors as loop_selectors
from trainer.loop import services as loop
from trainer.models import Judge, LoopPolicy, ModelVersion
from trainer.views import _project_for_admin
from webapp import safejson

ACTIONS = {
    "pause": "The loop is paused: no transition until you resume it.",
    "resume": "The loop is running again.",
    "stop": "The loop is stopped: its current round ended and its running jobs were cancelled.",
    "retrain": "Retraining now, without waiting for more labels.",
}
COLOURS = {"previous": "#2457c5", "base": "#c2571a", "val": "#7a3fb0", "fresh": "#1b7f4b"}


def _policy_field(name: str) -> dict:
    field = LoopPolicy._meta.get_field(name)
    return {"help_text": field.help_text, "initial": field.default}


class LoopSettingsForm(forms.Form):
    enabled = forms.BooleanField(
        required=False, help_text="Rounds run by themselves while this is on."
    )
    base_policy = forms.ModelChoiceField(
        queryset=ModelVersion.objects.none(),
        help_text=LoopPolicy._meta.get_field("base_policy").help_text,
    )
    algorithm = forms.ChoiceField(
        choices=LoopPolicy.Algorithm.choices,
        initial=LoopPolicy.Algorithm.RAFT,
        help_text="The policy step: PPO and RAFT are scored by the round's reward model, DPO "
        "trains on the labels.",
    )
    sft_first = forms.BooleanField(
        required=False,
        label="Start with SFT on demonstrations",
        **_policy_field("sft_first"),
    )
    reward_after = forms.IntegerField(min_value=1, **_policy_field("reward_after"))
    train_prompts = forms.IntegerField(min_value=0, **_policy_field("train_prompts"))
    compare_with_base = forms.BooleanField(required=False, **_policy_field("compare_with_base"))
    reference = forms.ChoiceField(
        required=False,
        choices=LoopPolicy.Reference.choices,
        initial=LoopPolicy.Reference.BASE,
        label="KL reference",
        help_text=LoopPolicy._meta.get_field("reference").help_text,
    )
    task_priority = forms.IntegerField(
        initial=LoopPolicy._meta.get_field("task_priority").default,
        help_text="Priority of the round's comparison tasks in the labeling queue (routed pairs "
        "go above it, the most useful first).",
    )
    acquisition = forms.ChoiceField(
        required=False,
        choices=[(rule, f"{rule}: {text}") for rule, text in RULE_HELP.items()],
        initial="random",
        label="Routing rule",
        help_text=LoopPolicy._meta.get_field("acquisition").help_text
        + " Disagreement needs a reward ensemble: set ensemble_heads (e.g. 4) in the reward "
        "config; with one head it ranks like uncertainty.",
    )
    candidates = forms.IntegerField(
        required=False, min_value=1, max_value=16, **_policy_field("candidates")
    )
    pairs_per_round = forms.IntegerField(
        required=False, min_value=0, **_policy_field("pairs_per_round")
    )
    judge = forms.ModelChoiceField(
        queryset=Judge.objects.none(), required=False, label="AI judge",
        help_text=LoopPolicy._meta.get_field("judge").help_text,
    )  # fmt: skip
    policy_config = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        help_text="The policy job's config (JSON object); model paths are filled in each round.",
    )
    reward_config = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        help_text="The reward job's config (JSON object).",
    )
    reward_source_weights = forms.CharField(
        required=False,
        label="Reward source weights",
        widget=forms.TextInput(attrs={"class": "mono", "spellcheck": "false",
                                      "placeholder": '{"ai": 0.5}'}),
        help_text=LoopPolicy._meta.get_field("reward_source_weights").help_text,
    )  # fmt: skip
    generate_config = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        help_text="The generate jobs' config (JSON object).",
    )
    sft_config = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
        help_text="The SFT job's config (JSON object), when the loop starts with SFT.",
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["judge"].queryset = Judge.objects.filter(project=project).order_by("id")
        self.fields["base_policy"].queryset = (
            ModelVersion.objects.filter(project=project, role=ModelVersion.Role.POLICY)
            .only("id", "name", "path", "role", "project_id")
            .order_by("id")
        )

    def _json_object(self, name: str) -> dict:
        raw = (self.cleaned_data.get(name) or "").strip()
        if not raw:
            return {}
        try:
            value = safejson.loads(raw)  # refuses what the database cannot store
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Give a JSON object, such as {"learning_rate": 1e-5}.')
        return value

    def clean_reference(self) -> str:
        return self.cleaned_data.get("reference") or LoopPolicy.Reference.BASE

    def clean_acquisition(self) -> str:
        return self.cleaned_data.get("acquisition") or "random"

    def clean_candidates(self) -> int:
        value = self.cleaned_data.get("candidates")
        return 1 if value is None else value

    def clean_pairs_per_round(self) -> int:
        value = self.cleaned_data.get("pairs_per_round")
        return 0 if value is None else value

    def clean_policy_config(self) -> dict:
        return self._json_object("policy_config")

    def clean_reward_config(self) -> dict:
        return self._json_object("reward_config")

    def clean_reward_source_weights(self) -> dict:
        return self._json_object("reward_source_weights")

    def clean_generate_config(self) -> dict:
        return self._json_object("generate_config")

    def clean_sft_config(self) -> dict:
        return self._json_object("sft_config")

    def clean(self) -> dict:
        """Each config is checked against its job kind's config now, not when a round starts
        the job (a bad one would fail that round)."""
        data = super().clean()
        refused = loop.loop_project_check(project=self.project)
        if refused:
            raise forms.ValidationError(refused)
        if data.get("sft_first") and (why := loop.loop_sft_check(project=self.project)):
            self.add_error("sft_first", why)
        base, algorithm = data.get("base_policy"), data.get("algorithm")
        if base is None:
            return data
        # A config missing from `data` was refused as JSON already, a missing algorithm too.
        for name, error in loop.loop_configs_check(
            base_policy=base, algorithm=algorithm, data=data
        ).items():
            self.add_error(name, error)
        return data


def _initial(policy: LoopPolicy | None) -> dict:
    if policy is None:
        return {}
    return {
        "enabled": policy.enabled,
        "base_policy": policy.base_policy_id,
        "algorithm": policy.algorithm,
        "reward_after": policy.reward_after,
        "train_prompts": policy.train_prompts,
        "compare_with_base": policy.compare_with_base,
        "reference": policy.reference,
        "task_priority": policy.task_priority,
        "acquisition": policy.acquisition,
        "candidates": policy.candidates,
        "pairs_per_round": policy.pairs_per_round,
        "judge": policy.judge_id,
        "policy_config": json.dumps(policy.policy_config, indent=1),
        "reward_config": json.dumps(policy.reward_config, indent=1),
        "reward_source_weights": json.dumps(policy.reward_source_weights)
        if policy.reward_source_weights
        else "",
        "generate_config": json.dumps(policy.generate_config, indent=1),
        "sft_first": policy.sft_first,
        "sft_config": json.dumps(policy.sft_config, indent=1),
    }


def _charts(rows: list[loop_selectors.RoundRow]) -> list[dict]:
    points = loop_selectors.accuracy_points(rows)
    win = plots.interval_chart(
        [
            plots.IntervalSeries(
                f"vs {against}", loop_selectors.win_rate_points(rows, against), COLOURS[against]
            )
            for against in ("previous", "base")
        ],
        title="Human-judged win rate of each round's policy",
    )
    acc = plots.interval_chart(
        [
            plots.IntervalSeries(
                "validation", [(x, y, None, None) for x, y in points["val"]], COLOURS["val"]
            ),
            plots.IntervalSeries("fresh labels", points["fresh"], COLOURS["fresh"]),
        ],
        title="Reward-model accuracy per round",
    )
    # plots.py escapes every piece of text it writes into the SVG.
    return [
        {"id": "win-rate", "title": "Win rate per round", "svg": mark_safe(win)},  # noqa: S308
        {"id": "rm-accuracy", "title": "Reward-model accuracy", "svg": mark_safe(acc)},  # noqa: S308
    ]


def _efficiency_chart(rows: list[efficiency.EfficiencyRow]) -> str:
    points = efficiency.efficiency_points(rows)
    svg = plots.interval_chart(
        [
            plots.IntervalSeries("win rate vs previous", points["win"], COLOURS["previous"]),
            plots.IntervalSeries("RM accuracy, fresh labels", points["fresh"], COLOURS["fresh"]),
        ],
        title="Labels spent against win rate and reward-model accuracy",
        x_label="labels",
    )
    return mark_safe(svg)  # noqa: S308 (plots.py escapes its text)


def _live_context(project: Project, state: loop_selectors.LoopState) -> dict:
    """What the live part of the page shows: rounds, charts, leaderboard, reward models."""
    last = state.current
    base_id = state.policy.base_policy_id if state.policy else None
    return {
        "project": project,
        "state": state,
        "policy": state.policy,
        "rows": state.rounds[::-1],
        "polling": state.can_change,
        "ended": last is not None and last.round.status in ("failed", "stopped"),
        "min_judged": loop_selectors.WARNING_MIN_JUDGED,
        "charts": _charts(state.rounds),
        "leaderboard": judgments.loop_leaderboard(
            judgments=state.judgments, models=state.models, base_id=base_id
        ),
        "base_id": base_id,
        "reward_rows": [r for r in state.rounds if r.reward_model is not None],
        **_efficiency_context(state.rounds),
    }


def _efficiency_context(rounds: list) -> dict:
    rows = efficiency.efficiency_rows(rounds)
    return {"efficiency": rows, "efficiency_chart": _efficiency_chart(rows) if rows else ""}


def _page_context(project: Project, form: LoopSettingsForm | None = None) -> dict:
    state = loop_selectors.loop_state(project=project)
    context = _live_context(project, state)
    context |= {
        "tab": "loop",
        "form": form or LoopSettingsForm(initial=_initial(state.policy), project=project),
        "refused": loop.loop_project_check(project=project),
    }
    return context


def _loop_url(project: Project, anchor: str = "") -> str:
    return reverse("training_loop", args=[project.id]) + (f"#{anchor}" if anchor else "")


@require_GET
@login_required
def loop_page(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    if request.htmx and not request.htmx.boosted:
        context = _live_context(project, loop_selectors.loop_state(project=project))
        template = "trainer/loop.html#loop-live"
        if not context["polling"]:
            return HttpResponseStopPolling(render_to_string(template, context, request=request))
        return render(request, template, context)
    return render(request, "trainer/loop.html", _page_context(project))


@require_POST
@login_required
def loop_settings(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    form = LoopSettingsForm(request.POST, project=project)
    if not form.is_valid():
        return render(request, "trainer/loop.html", _page_context(project, form))
    policy = loop.loop_configure(project=project, **form.cleaned_data)
    audit_record(
        request=request,
        project=project,
        action=AuditEntry.Action.LOOP_CONFIGURE,
        details=plain(form.cleaned_data),
    )
    if policy.enabled and not policy.paused:
        loop.loop_advance(project_id=project.id)
    messages.success(request, "Loop settings saved.")
    return redirect(_loop_url(project))


@require_POST
@login_required
def loop_action(request: HttpRequest, project_id: int, action: str) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    if action not in ACTIONS:
        raise Http404("No such action.")
    policy = LoopPolicy.objects.filter(project=project).first()
    if policy is None:
        messages.error(request, "This project has no loop yet: save its settings first.")
        return redirect(_loop_url(project))
    loop.loop_act(policy=policy, action=action)
    audit_record(
        request=request, project=project, action=AuditEntry.Action.LOOP_ACTION, target=action
    )
    messages.success(request, ACTIONS[action])
    return redirect(_loop_url(project))


@require_POST
@login_required
def loop_fresh_accuracy(request: HttpRequest, project_id: int, model_id: int) -> HttpResponse:
    project = _project_for_admin(request, project_id)
    model = accuracy.reward_model_get(project_id=project.id, model_id=model_id)
    if model is None:
        raise Http404("No such reward model.")
    measure.reward_model_fresh_accuracy_request(model_version=model)
    messages.success(
        request,
        f"Measuring {model.name} on the labels made after it was trained: the result appears "
        "below once a gpu worker has run it.",
    )
    return redirect(_loop_url(project, "reward-models"))
