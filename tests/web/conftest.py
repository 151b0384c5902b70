"""The demo world, scored, and signed-in browsers (Django's test client) for its personas."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.test import Client

from portal.accounts.models import User
from portal.celery import app
from portal.records.models import Segment
from tests.api.conftest import World

CCF = "chengdu-chongqing-consumer-finance"
DELTA = "yangtze-river-delta"


@pytest.fixture
def world(db, django_capture_on_commit_callbacks) -> World:
    """seed_demo with its score refresh run in this process (the chunk tasks are sent on commit)."""
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            call_command("seed_demo", "--consumers", "300", verbosity=0)
    finally:
        app.conf.task_always_eager = saved
    return World(segments={s.slug: s for s in Segment.objects.all()})


@pytest.fixture
def client_for(world) -> Callable[..., Client]:
    """client_for("regulator") -> a test client signed in as that demo user (English unless `language`)."""

    def make(username: str | None, language: str = "en") -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE=language)
        if username is not None:
            client.force_login(User.objects.get(username=username))
        return client

    return make
