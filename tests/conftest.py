"""Personas (healthchecks.io style): alice owns the project, bob labels on it, charlie is an
outsider who must be denied everything.

Django imports live inside the fixtures, so the Django-free training tests under
tests/trainer/algorithms also run with `-p no:django`.
"""

import pytest


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
