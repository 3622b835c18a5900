"""Django admin for the labeling data: a back office for staff, not the labeling UI.

Counters and queue state (annotation counts, leases) are written by annotator/services.py
only, so they are read-only here. Annotations change only through their labeler (undo, edit:
services.annotation_undo / annotation_edit, each kept as a revision): the admin shows answers
and revisions and never adds, changes or deletes one (deleting a project that has annotations
is refused for the same reason).
"""

from django.contrib import admin
from django.http import HttpRequest

from annotator import services
from annotator.audit import AuditEntry, audit_record
from annotator.models import (
    Annotation,
    AnnotationRevision,
    Assignment,
    Completion,
    Membership,
    Project,
    Prompt,
    Task,
    TaskCompletion,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    # The claim counter paces gold tasks; a pause is lifted on the project's Gold page.
    fields = ["user", "role", "paused_at"]
    readonly_fields = ["paused_at"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "overlap", "lease_seconds", "created_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at"]
    inlines = [MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "kind", "guidelines", "overlap", "lease_seconds"]}),
        ("Pairwise", {"fields": ["allow_tie", "allow_both_bad", "ask_strength", "wide_lines"]}),
        ("Likert", {"fields": ["likert_points", "flags", "aspects"]}),
        (
            "Quality checks",
            {"fields": ["gold_every", "gold_floor", "gold_min_answers", "repeat_share"]},
        ),
        ("History", {"fields": ["created_by", "created_at"]}),
    ]

    def save_model(self, request: HttpRequest, obj: Project, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is not Membership:
            return
        changed = [m for m in formset.new_objects] + [m for m, _ in formset.changed_objects]
        for membership in changed:
            audit_record(
                request=request, project=membership.project_id,
                action=AuditEntry.Action.MEMBER_ROLE,
                target=f"user {membership.user.get_username()}",
                details={"role": membership.role},
            )  # fmt: skip

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        project = form.instance
        # The creator becomes the project's first admin, as with services.project_create,
        # unless the members typed in on the same form already name them.
        if not change and not project.memberships.filter(user=request.user).exists():
            services.membership_set(project=project, user=request.user, role=Membership.Role.ADMIN)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    raw_id_fields = ["user", "project"]
    list_select_related = ["user", "project"]
    readonly_fields = ["claims", "paused_at", "paused_reason"]


class CompletionInline(ReadOnlyInline):
    model = Completion
    fields = ["text", "source", "model_version_id"]


class NoAddAdmin(admin.ModelAdmin):
    """Prompts, completions and tasks come in through the import (annotator/importing.py)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Prompt)
class PromptAdmin(NoAddAdmin):
    list_display = ["id", "__str__", "project", "split", "created_at"]
    list_filter = ["split", "project"]
    search_fields = ["text"]
    list_select_related = ["project"]
    # What labelers judged stays as it was; split and meta may be corrected.
    readonly_fields = ["project", "text", "messages", "created_at"]
    inlines = [CompletionInline]


@admin.register(Completion)
class CompletionAdmin(NoAddAdmin):
    list_display = ["id", "__str__", "prompt", "source", "model_version_id", "created_at"]
    list_filter = ["source"]
    search_fields = ["text"]
    list_select_related = ["prompt"]
    readonly_fields = ["prompt", "text", "source", "model_version_id", "generation", "created_at"]


class TaskCompletionInline(ReadOnlyInline):
    model = TaskCompletion
    fields = ["position", "completion"]
    show_change_link = False


class AssignmentInline(ReadOnlyInline):
    model = Assignment
    fields = ["labeler", "status", "expires_at", "finished_at", "skip_reason"]


@admin.register(Task)
class TaskAdmin(NoAddAdmin):
    list_display = ["id", "project", "kind", "priority", "annotation_count", "overlap", "routing"]
    list_filter = ["kind", "is_complete", "project"]
    list_select_related = ["project"]
    # Priority, gold answer and meta may be edited; the rest is the queue's state.
    readonly_fields = [
        "project",
        "prompt",
        "kind",
        "overlap",
        "annotation_count",
        "is_complete",
        "round",
        "routing",
        "created_at",
    ]
    inlines = [TaskCompletionInline, AssignmentInline]

    @admin.display(description="Why asked")
    def routing(self, task: Task) -> str:
        """The loop's routing of this pair (meta["acquisition"], written by the loop): its rule,
        score and rank among the round's pairs, and how many candidates it was chosen from.
        Shown to staff here and on the loop page, never to labelers."""
        info = (task.meta or {}).get("acquisition")
        if not isinstance(info, dict):
            return "-"
        score = info.get("score")
        score = f"{score:.4g}" if isinstance(score, int | float) else "?"
        candidates = len(info.get("candidates") or ())
        return (
            f"{info.get('rule', '?')} · score {score} · rank {info.get('rank', '?')} of the "
            f"round · from {candidates} candidates"
        )


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    """Leases are the queue's state: shown, never edited by hand."""

    list_display = ["id", "task", "labeler", "status", "expires_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["labeler__username"]
    list_select_related = ["task", "labeler"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ViewOnlyAdmin(admin.ModelAdmin):
    """Records that are never added, changed or deleted by hand: answers, their revisions and
    the audit log."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Annotation)
class AnnotationAdmin(ViewOnlyAdmin):
    """Only their labelers change annotations (through the services): view only here."""

    list_display = [
        "id", "task", "labeler", "labeler_kind", "kind", "verdict", "score", "created_at",
    ]  # fmt: skip
    list_filter = ["kind", "verdict", "labeler_kind"]
    search_fields = ["labeler__username", "notes"]
    list_select_related = ["task", "labeler"]
    date_hierarchy = "created_at"


@admin.register(AnnotationRevision)
class AnnotationRevisionAdmin(ViewOnlyAdmin):
    """Who changed which answer, when, from what to what: the record, view only."""

    list_display = ["id", "annotation_id_value", "task", "labeler", "action", "changed_at"]
    list_filter = ["action"]
    search_fields = ["labeler__username"]
    list_select_related = ["task", "labeler"]
    date_hierarchy = "changed_at"


@admin.register(AuditEntry)
class AuditEntryAdmin(ViewOnlyAdmin):
    """The audit log is append-only: shown here, never added, changed or deleted."""

    list_display = ["created_at", "project", "actor_name", "action", "target", "source_address"]
    list_filter = ["action", "via", "project"]
    list_select_related = ["project"]
    search_fields = ["actor_name", "target", "source_address"]
    date_hierarchy = "created_at"
