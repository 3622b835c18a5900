"""Personas (healthchecks.io style): alice owns the project, bob labels on it, charlie is an
outsider who must be denied everything.

Django imports live inside the fixtures, so the Django-free training tests under
tests/trainer/algorithms also run with `-p no:django`.
"""

import pytest


@pytest.hookimpl(tryfirst=True)  # before pytest-django's, whose stable sort keeps this order
def pytest_collection_modifyitems(config, items):
    """Files with slow tests (training, real workers) first, each file's tests in their own
    order, within the groups pytest-django then orders as Django does (database tests, then
    transactional ones, then the rest): the two processes of ./scripts/test (pytest-xdist, a
    file per process) take the long files early and end together on short ones."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order kept within files


@pytest.fixture
def alice(db):
    from tests.factories import UserFactory

    return UserFactory(username="alice", is_staff=True)


@pytest.fixture
def bob(db):
    from tests.factories import UserFactory

    return UserFactory(username="bob")


@pytest.fixture
def charlie(db):
    from tests.factories import UserFactory

    return UserFactory(username="charlie")


@pytest.fixture
def project(alice, bob):
    from annotator.models import Membership
    from tests.factories import MembershipFactory, ProjectFactory

    project = ProjectFactory(created_by=alice)
    MembershipFactory(project=project, user=alice, role=Membership.Role.ADMIN)
    MembershipFactory(project=project, user=bob, role=Membership.Role.LABELER)
    return project


def api_client_for(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_as():
    return api_client_for
