"""Personas (healthchecks.io style): alice owns the project, bob labels on it, charlie is an
outsider who must be denied everything."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotator.models import Membership
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", is_staff=True)


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def charlie(db):
    return UserFactory(username="charlie")


@pytest.fixture
def project(alice, bob):
    project = ProjectFactory(created_by=alice)
    MembershipFactory(project=project, user=alice, role=Membership.Role.ADMIN)
    MembershipFactory(project=project, user=bob, role=Membership.Role.LABELER)
    return project


def api_client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_as():
    return api_client_for
