"""Completeness under load: concurrent clients make hundreds of mixed requests against a live server on
PostgreSQL; afterwards there is exactly one audit event per request, with the right actor, outcome and
subjects, and the sealed chain verifies."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field

import pytest
from django.core.management import call_command

from audit.chain import events_seal
from audit.models import AuditEvent
from audit.verify import chain_verify
from portal.accounts.models import User
from portal.accounts.tokens import token_create
from portal.records.models import Consumer, Segment

CCF = "chengdu-chongqing-consumer-finance"
CLIENTS = 4
ROUNDS = 8  # each round of each client makes len(plan) requests


@dataclass
class Sent:
    request_id: str
    username: str
    status: int
    expected_outcome: str
    subjects: set[str] = field(default_factory=set)


def call(
    base: str, path: str, token: str | None, method: str = "GET", body: dict | None = None
) -> tuple[str, int, bytes]:
    request_id = uuid.uuid4().hex
    headers = {"X-Request-ID": request_id, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the test's own live server
            return request_id, response.status, response.read()
    except urllib.error.HTTPError as error:
        return request_id, error.code, error.read()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_every_request_is_audited_exactly_once_under_concurrency(live_server):
    call_command("seed_demo", "--consumers", "300", verbosity=0)
    inside = Consumer.objects.filter(memberships__segment__slug=CCF).earliest("public_id")
    outside = Consumer.objects.exclude(memberships__segment__slug=CCF).earliest("public_id")
    ccf = Segment.objects.get(slug=CCF)
    tokens = {
        name: token_create(user=User.objects.get(username=name))[0]
        for name in ("regulator", "regulator2", "shareholder", "auditor", "admin")
    }

    # (user, path, expected status, expected outcome, subjects the response must be attributed to)
    plan = [
        ("regulator", f"/api/v1/consumers/{inside.public_id}/", 200, "allowed", {inside.public_id}),
        (
            "regulator",
            f"/api/v1/consumers/{inside.public_id}/transactions/?page_size=5",
            200,
            "allowed",
            {inside.public_id},
        ),
        ("regulator", f"/api/v1/consumers/{outside.public_id}/", 404, "denied", set()),
        ("regulator", "/api/v1/consumers/CZZZZZZZZZZZZZZZZ/", 404, "denied", set()),
        ("regulator", f"/api/v1/consumers/?q={inside.resident_id}", 200, "allowed", {inside.public_id}),
        ("regulator", f"/api/v1/consumers/?segment={ccf.pk}&page_size=3", 200, "allowed", None),
        ("regulator", "/api/v1/transactions/?page_size=3", 200, "allowed", None),
        ("regulator2", f"/api/v1/consumers/{inside.public_id}/", 404, "denied", set()),
        ("shareholder", "/api/v1/segments/", 200, "allowed", set()),
        ("auditor", "/api/v1/consumers/", 403, "denied", set()),
        ("auditor", "/api/v1/audit/events/?page_size=5", 200, "allowed", set()),
        (None, "/api/v1/consumers/", 401, "denied", set()),
        ("admin", "/api/v1/transactions/", 200, "allowed", set()),
        ("regulator", "/api/v1/transactions/?page_size=0", 400, "denied", set()),
    ]
    sent: list[Sent] = []
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        for _ in range(ROUNDS):
            for username, path, status, outcome, subjects in plan:
                request_id, got, body = call(live_server.url, path, tokens.get(username or ""))
                if got != status:
                    failures.append(f"{username} {path}: {got}, expected {status}")
                if subjects is None:  # a list: its subjects are the public ids it returned
                    rows = json.loads(body)["results"]
                    subjects = {r.get("public_id") or r.get("consumer") for r in rows}
                with lock:
                    sent.append(Sent(request_id, username or "", got, outcome, subjects))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:10]
    assert len(sent) == CLIENTS * ROUNDS * len(plan)

    events = {
        e.request_id: e
        for e in AuditEvent.objects.filter(request_id__in=[s.request_id for s in sent]).prefetch_related(
            "subjects"
        )
    }
    assert AuditEvent.objects.filter(request_id__in=[s.request_id for s in sent]).count() == len(sent)
    for request in sent:
        event = events[request.request_id]
        assert (event.actor_username, event.status, event.outcome) == (
            request.username,
            request.status,
            request.expected_outcome,
        ), request
        assert {s.public_id for s in event.subjects.all()} == request.subjects, request

    assert events_seal().sealed >= len(sent)
    result = chain_verify()
    assert result.ok, result.as_dict()
    assert result.pending == 0
