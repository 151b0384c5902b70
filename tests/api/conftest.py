"""The demo world, small, and API clients for its personas."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.test import Client

from portal.accounts.models import User
from portal.accounts.tokens import token_create
from portal.records.models import Consumer, Segment

PERSONAS = ("regulator", "regulator2", "shareholder", "compliance", "compliance2", "auditor", "admin")


@dataclass
class World:
    segments: dict[str, Segment]

    def segment(self, slug: str) -> Segment:
        return self.segments[slug]

    def consumer_in(self, slug: str, *, not_in: tuple[str, ...] = ()) -> Consumer:
        consumers = Consumer.objects.filter(memberships__segment__slug=slug)
        for other in not_in:
            consumers = consumers.exclude(memberships__segment__slug=other)
        return consumers.order_by("public_id").first()  # type: ignore[return-value]

    def consumer_outside(self, *slugs: str) -> Consumer:
        consumers = Consumer.objects.all()
        for slug in slugs:
            consumers = consumers.exclude(memberships__segment__slug=slug)
        return consumers.order_by("public_id").first()  # type: ignore[return-value]


@pytest.fixture
def demo(db) -> World:
    call_command("seed_demo", "--consumers", "300", verbosity=0)
    return World(segments={s.slug: s for s in Segment.objects.all()})


class ApiClient(Client):
    def __init__(self, user: User | None) -> None:
        super().__init__()
        self.user = user
        if user is not None:
            secret, _token = token_create(user=user)
            self.defaults["HTTP_AUTHORIZATION"] = f"Bearer {secret}"


@pytest.fixture
def api(demo):
    """api("regulator") -> a client holding a bearer token of that demo user; api(None) -> no credentials."""
    clients: dict[str | None, ApiClient] = {}

    def client(username: str | None) -> ApiClient:
        if username not in clients:
            clients[username] = ApiClient(User.objects.get(username=username) if username else None)
        return clients[username]

    return client


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in the calling process for this test, whatever the broker: for tests of what a task
    does. What a real worker does with it is tested separately (marker `worker`)."""
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
