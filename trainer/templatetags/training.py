"""Template helpers of the training pages: `{% load training %}`."""

from django import template
from django.contrib.auth.models import AnonymousUser, User

from trainer import selectors

register = template.Library()


@register.filter
def admins_a_project(user: User | AnonymousUser) -> bool:
    """Whether the training pages are open to the user: one query, none for a superuser."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or selectors.projects_for_admin(user).exists()
