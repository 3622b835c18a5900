import factory
from django.contrib.auth import get_user_model

from annotator.models import Completion, Kind, Membership, Project, Prompt, Task, TaskCompletion


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    kind = Kind.PAIRWISE
    overlap = 1


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.LABELER


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    text = factory.Sequence(lambda n: f"Prompt number {n}?")


def make_task(project: Project, *, k: int | None = None, priority: int = 0, texts=None) -> Task:
    """A task over a fresh prompt with k completions (default: what the project kind needs)."""
    if k is None:
        k = {Kind.PAIRWISE: 2, Kind.LIKERT: 1, Kind.RANKING: 3, Kind.DEMONSTRATION: 0,
             Kind.EDIT: 1}[project.kind]  # fmt: skip
    kind = project.kind
    prompt = PromptFactory(project=project)
    texts = texts or [f"Answer {i} to {prompt.text}" for i in range(k)]
    completions = [Completion.objects.create(prompt=prompt, text=t) for t in texts]
    task = Task.objects.create(
        project=project, prompt=prompt, kind=kind, overlap=project.overlap, priority=priority
    )
    TaskCompletion.objects.bulk_create(
        TaskCompletion(task=task, completion=c, position=i) for i, c in enumerate(completions)
    )
    return task
