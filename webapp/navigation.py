"""What the site's navigation shows, for every page's base layout (templates/base.html).

webapp/ wires the apps together, so the check that reads the training app lives here: the
labeling app and its templates never reach trainer code (docs/architecture.md).
"""

from django.http import HttpRequest

from trainer import selectors as trainer_selectors


def navigation(request: HttpRequest) -> dict:
    """`nav_training`: whether the Training link shows. Called by the template only where it is
    shown (a fragment that does not use it runs no query): one query, none for a superuser."""

    def nav_training() -> bool:
        user = request.user
        if not user.is_authenticated:
            return False
        return user.is_superuser or trainer_selectors.projects_for_admin(user).exists()

    return {"nav_training": nav_training}
