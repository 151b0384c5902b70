"""Every endpoint x every demo role x (in scope, out of scope, unknown, malformed), against a literal table.

The expectations are written out here, not computed through the access policy, so a policy bug cannot make
its own test pass. In the demo world (SPEC §8): `regulator`'s organisation holds view_records, view_scores
and export_records on the Chengdu-Chongqing segment ("ccf"); `regulator2` has only a pending request;
`shareholder`'s organisation holds view_aggregates on the Yangtze River Delta ("yrd") and revolving-credit
segments; nobody holds anything on cash loans ("cash"). Nobody else has scope, not even the superuser `admin`.
"""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from portal.access.models import AccessGrant
from tests.api.conftest import PERSONAS

CCF, YRD, CASH = "chengdu-chongqing-consumer-finance", "yangtze-river-delta", "cash-loans"
UNKNOWN_CONSUMER = "CZZZZZZZZZZZZZZZZ"
MALFORMED = ["not-a-public-id", "%00", "-1", "1.5", "C" + "Z" * 300]

# Object endpoints: role -> (in the regulator's scope, in the shareholder's scope, unknown id)
CONSUMER_OBJECT = {
    "regulator": (200, 404, 404),
    "regulator2": (404, 404, 404),
    "shareholder": (404, 404, 404),
    "compliance": (403, 403, 403),
    "compliance2": (403, 403, 403),
    "auditor": (403, 403, 403),
    "admin": (404, 404, 404),
}
SEGMENT_SUMMARY = {  # (ccf, yrd, cash, unknown)
    "regulator": (200, 404, 404, 404),
    "regulator2": (404, 404, 404, 404),
    "shareholder": (404, 200, 404, 404),
    "compliance": (403, 403, 403, 403),
    "compliance2": (403, 403, 403, 403),
    "auditor": (403, 403, 403, 403),
    "admin": (404, 404, 404, 404),
}
LISTS = {  # path -> role -> status
    "/api/v1/me/": dict.fromkeys(PERSONAS, 200),
    "/api/v1/segments/": {
        "regulator": 200,
        "regulator2": 200,
        "shareholder": 200,
        "compliance": 200,
        "compliance2": 200,
        "auditor": 403,
        "admin": 200,
    },
    "/api/v1/consumers/": {
        "regulator": 200,
        "regulator2": 200,
        "shareholder": 200,
        "compliance": 403,
        "compliance2": 403,
        "auditor": 403,
        "admin": 200,
    },
    "/api/v1/transactions/": {
        "regulator": 200,
        "regulator2": 200,
        "shareholder": 200,
        "compliance": 403,
        "compliance2": 403,
        "auditor": 403,
        "admin": 200,
    },
    "/api/v1/grants/": dict.fromkeys(PERSONAS, 200),
    # Memberships and credential resets: compliance decides, administrators ask, auditors read (SPEC §3).
    **{
        path: {
            "regulator": 403,
            "regulator2": 403,
            "shareholder": 403,
            "compliance": 200,
            "compliance2": 200,
            "auditor": 200,
            "admin": 200,
        }
        for path in ("/api/v1/memberships/", "/api/v1/credential-resets/")
    },
}
# Segments each role's list shows (by slug), and how many grants each role may read in the demo world.
SEGMENTS_LISTED = {
    "regulator": {CCF},
    "regulator2": set(),
    "shareholder": {YRD, "revolving-credit"},
    "admin": set(),
}
GRANTS_LISTED = {
    "regulator": 1,
    "regulator2": 1,
    "shareholder": 2,
    "compliance": 4,
    "compliance2": 4,
    "auditor": 4,
    "admin": 4,
}
GRANT_REQUEST = {  # a valid request of view_masked_records on "cash" for the caller's own organisation
    "regulator": 201,
    "regulator2": 201,
    "shareholder": 403,
    "compliance": 400,
    "compliance2": 400,
    "auditor": 403,
    "admin": 403,
}
GRANT_DECISION_ON_UNKNOWN = {
    "regulator": 403,
    "regulator2": 403,
    "shareholder": 403,
    "compliance": 404,
    "compliance2": 404,
    "auditor": 403,
    "admin": 403,
}


def consumer_paths(public_id: str) -> list[str]:
    return [f"/api/v1/consumers/{public_id}/", f"/api/v1/consumers/{public_id}/transactions/"]


def test_consumer_objects_by_role_and_scope(api, demo):
    in_regulator = demo.consumer_in(CCF)
    in_shareholder_only = demo.consumer_in(YRD, not_in=(CCF,))
    failures = []
    for role, (in_scope, out_of_scope, unknown) in CONSUMER_OBJECT.items():
        client = api(role)
        for public_id, expected in (
            (in_regulator.public_id, in_scope),
            (in_shareholder_only.public_id, out_of_scope),
            (UNKNOWN_CONSUMER, unknown),
        ):
            for path in consumer_paths(public_id):
                status = client.get(path).status_code
                if status != expected:
                    failures.append(f"{role} GET {path}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_out_of_scope_is_indistinguishable_from_unknown(api, demo):
    client = api("regulator")
    outside = demo.consumer_outside(CCF)
    for path_out, path_unknown in zip(
        consumer_paths(outside.public_id), consumer_paths(UNKNOWN_CONSUMER), strict=True
    ):
        out, unknown = client.get(path_out), client.get(path_unknown)
        assert (
            (out.status_code, out.content)
            == (unknown.status_code, unknown.content)
            == (404, b'{"detail":"Not found."}')
        )


@pytest.mark.parametrize("malformed", MALFORMED)
def test_a_malformed_id_in_a_path_is_a_plain_404(api, demo, malformed):
    client = api("regulator")
    for path in [*consumer_paths(malformed), f"/api/v1/segments/{malformed}/summary/"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not found."}


def test_segment_summaries_by_role_and_scope(api, demo):
    ids = [demo.segment(CCF).pk, demo.segment(YRD).pk, demo.segment(CASH).pk, 999_999]
    failures = []
    for role, expected_row in SEGMENT_SUMMARY.items():
        for segment_id, expected in zip(ids, expected_row, strict=True):
            status = api(role).get(f"/api/v1/segments/{segment_id}/summary/").status_code
            if status != expected:
                failures.append(f"{role} summary of {segment_id}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_list_endpoints_by_role(api, demo):
    failures = []
    for path, expectations in LISTS.items():
        for role, expected in expectations.items():
            status = api(role).get(path).status_code
            if status != expected:
                failures.append(f"{role} GET {path}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "path", [*LISTS, "/api/v1/segments/1/summary/", f"/api/v1/consumers/{UNKNOWN_CONSUMER}/"]
)
def test_no_credentials_is_401_with_a_bearer_challenge(api, demo, path):
    response = api(None).get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_is_401(api, demo):
    client = api(None)
    for header in ("Bearer cop_notatoken", "Bearer", "Bearer a b", "Bearer \u00e9"):
        assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=header).status_code == 401, header


def test_segment_lists_show_only_segments_in_scope(api, demo):
    for role, slugs in SEGMENTS_LISTED.items():
        listed = {s["id"] for s in api(role).get("/api/v1/segments/").json()["results"]}
        assert listed == {demo.segment(slug).pk for slug in slugs}, role


def test_compliance_sees_every_segment_but_only_name_kind_and_size(api, demo):
    results = api("compliance").get("/api/v1/segments/?page_size=200").json()["results"]
    assert len(results) == len(demo.segments)
    assert all(r["permissions"] == [] for r in results)


def test_consumer_and_transaction_lists_never_leave_scope(api, demo):
    allowed = {c.public_id for c in demo.segment(CCF).consumers.all()}
    listed = {
        c["public_id"] for c in api("regulator").get("/api/v1/consumers/?page_size=200").json()["results"]
    }
    assert listed == allowed
    seen: set[str] = set()
    url: str | None = "/api/v1/transactions/?page_size=200"
    while url:
        page = api("regulator").get(url).json()
        seen |= {t["consumer"] for t in page["results"]}
        url = page["next"]
    assert seen == allowed
    for role in ("regulator2", "shareholder", "admin"):
        assert api(role).get("/api/v1/consumers/").json()["results"] == []
        assert api(role).get("/api/v1/transactions/").json()["results"] == []


def test_search_finds_nothing_outside_scope(api, demo):
    outside = demo.consumer_outside(CCF)
    inside = demo.consumer_in(CCF)
    client = api("regulator")
    for term in (outside.public_id, outside.resident_id, outside.phone):
        assert client.get("/api/v1/consumers/", {"q": term}).json()["results"] == []
    for term in (inside.public_id, inside.resident_id, inside.phone):
        assert [c["public_id"] for c in client.get("/api/v1/consumers/", {"q": term}).json()["results"]] == [
            inside.public_id
        ]


def test_search_matches_exactly(api, demo):
    inside = demo.consumer_in(CCF)
    client = api("regulator")
    for partial in (inside.resident_id[:-1], inside.phone[:7], inside.public_id.lower()):
        assert client.get("/api/v1/consumers/", {"q": partial}).json()["results"] == []


def test_aggregates_count_only_the_segment(api, demo):
    segment = demo.segment(YRD)
    body = api("shareholder").get(f"/api/v1/segments/{segment.pk}/summary/").json()
    members = segment.consumers.count()
    assert body["consumers"] == (members if members >= 10 else None)


def test_grant_lists_by_role(api, demo):
    for role, count in GRANTS_LISTED.items():
        assert len(api(role).get("/api/v1/grants/").json()["results"]) == count, role


def test_grant_requests_by_role(api, demo):
    from datetime import timedelta

    from django.utils import timezone

    body = {
        "segment": demo.segment(CASH).pk,
        "permissions": ["view_masked_records"],
        "purpose": "Review of cash-loan collections.",
        "legal_basis": "Supervisory mandate.",
        "case_reference": "CASE-1",
        "valid_until": (timezone.now() + timedelta(days=30)).isoformat(),
    }
    failures = []
    for role, expected in GRANT_REQUEST.items():
        response = api(role).post("/api/v1/grants/", body, content_type="application/json")
        if response.status_code != expected:
            failures.append(
                f"{role}: {response.status_code}, expected {expected}: {response.content[:200]!r}"
            )
    assert not failures, "\n".join(failures)


def test_grant_decisions_by_role(api, demo):
    failures = []
    for role, expected in GRANT_DECISION_ON_UNKNOWN.items():
        for verb in ("approve", "reject", "revoke"):
            status = (
                api(role)
                .post(f"/api/v1/grants/999999/{verb}/", {"reason": "x"}, content_type="application/json")
                .status_code
            )
            if status != expected:
                failures.append(f"{role} {verb}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_every_request_of_the_matrix_is_audited(api, demo):
    before = AuditEvent.objects.count()
    outside = demo.consumer_outside(CCF)
    api("regulator").get(f"/api/v1/consumers/{outside.public_id}/")
    api("auditor").get("/api/v1/consumers/")
    api(None).get("/api/v1/consumers/")
    events = list(AuditEvent.objects.order_by("id")[before:])
    assert [(e.actor_username, e.outcome, e.status) for e in events] == [
        ("regulator", "denied", 404),
        ("auditor", "denied", 403),
        ("", "denied", 401),
    ]
    assert events[0].requested_id == outside.public_id
    assert not events[0].subjects.exists()


def test_an_allowed_read_names_its_grant_and_subjects(api, demo):
    inside = demo.consumer_in(CCF)
    api("regulator").get(f"/api/v1/consumers/{inside.public_id}/")
    event = AuditEvent.objects.latest("id")
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    assert (event.action, event.outcome, event.grant_id, event.purpose) == (
        "consumer.read",
        "allowed",
        grant.pk,
        grant.purpose,
    )
    assert list(event.subjects.values_list("public_id", flat=True)) == [inside.public_id]


# --- The admin console ----------------------------------------------------------------------------------
ADMIN_CONSOLE = {  # role -> (changelist, detail of a consumer in ccf, detail of an unknown id)
    "admin": (200, 404, 404),
    "regulator": (302, 302, 302),  # not staff: sent to the admin login page
}


def test_admin_console_consumer_pages(client, demo):
    from portal.accounts.models import User

    inside = demo.consumer_in(CCF)
    for role, (listing, detail, unknown) in ADMIN_CONSOLE.items():
        client.force_login(User.objects.get(username=role))
        assert client.get("/admin/records/consumer/").status_code == listing, role
        assert client.get(f"/admin/records/consumer/{inside.public_id}/change/").status_code == detail, role
        assert client.get(f"/admin/records/consumer/{UNKNOWN_CONSUMER}/change/").status_code == unknown, role
        client.logout()


def test_the_admin_console_shows_no_consumer_to_a_superuser_without_a_grant(client, demo):
    from portal.accounts.models import User

    client.force_login(User.objects.get(username="admin"))
    assert client.get("/admin/records/consumer/").context["cl"].result_count == 0
    assert client.get("/admin/records/transaction/").context["cl"].result_count == 0
    assert client.get("/admin/records/account/").context["cl"].result_count == 0


# --- The audit trail's endpoints ----------------------------------------------------------------------------
ACCESS_LOG = {  # (consumer in ccf, consumer outside every grant, unknown id)
    "regulator": (200, 404, 404),
    "regulator2": (404, 404, 404),
    "shareholder": (403, 403, 403),
    "compliance": (403, 403, 403),
    "compliance2": (403, 403, 403),
    "auditor": (200, 200, 200),
    "admin": (403, 403, 403),
}
AUDIT_ENDPOINTS = {
    "/api/v1/audit/events/": {"auditor"},
    "/api/v1/audit/verify/": {"auditor"},
    "/api/v1/audit/checkpoints/": {"auditor", "regulator", "regulator2"},
}


def test_consumer_access_logs_by_role_and_scope(api, demo):
    inside, outside = demo.consumer_in(CCF), demo.consumer_outside(CCF, YRD)
    failures = []
    for role, expected_row in ACCESS_LOG.items():
        for public_id, expected in zip(
            (inside.public_id, outside.public_id, UNKNOWN_CONSUMER), expected_row, strict=True
        ):
            status = api(role).get(f"/api/v1/consumers/{public_id}/access-log/").status_code
            if status != expected:
                failures.append(f"{role} access log of {public_id}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_audit_endpoints_by_role(api, demo):
    failures = []
    for path, allowed in AUDIT_ENDPOINTS.items():
        for role in PERSONAS:
            expected = 200 if role in allowed else 403
            status = api(role).get(path).status_code
            if status != expected:
                failures.append(f"{role} GET {path}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_the_access_log_lists_who_read_a_consumer_and_why(api, demo):
    inside = demo.consumer_in(CCF)
    api("regulator").get(f"/api/v1/consumers/{inside.public_id}/")
    api("regulator").get(f"/api/v1/consumers/{inside.public_id}/transactions/")
    log = api("auditor").get(f"/api/v1/consumers/{inside.public_id}/access-log/").json()["results"]
    grant = AccessGrant.objects.get(case_reference="PBC-CRC-2026-0412")
    assert [(e["action"], e["actor_username"], e["grant_id"], e["purpose"]) for e in log[:2]] == [
        ("consumer.transactions", "regulator", grant.pk, grant.purpose),
        ("consumer.read", "regulator", grant.pk, grant.purpose),
    ]
    assert all(e["actor_organisation"] for e in log)


def test_audit_event_search_filters(api, demo):
    inside = demo.consumer_in(CCF)
    api("regulator").get(f"/api/v1/consumers/{inside.public_id}/")
    client = api("auditor")
    rows = client.get("/api/v1/audit/events/", {"consumer": inside.public_id, "actor": "regulator"}).json()
    assert [r["action"] for r in rows["results"]] == ["consumer.read"]
    assert client.get("/api/v1/audit/events/", {"outcome": "maybe"}).status_code == 400
    assert client.get("/api/v1/audit/events/", {"since": "never"}).status_code == 400


# --- Scoring -----------------------------------------------------------------------------------------------
SCORING_LISTS = {
    "/api/v1/scoring/models/": dict.fromkeys(PERSONAS, 200),
    "/api/v1/scoring/runs/": {
        "regulator": 403,
        "regulator2": 403,
        "shareholder": 403,
        "compliance": 200,
        "compliance2": 200,
        "auditor": 200,
        "admin": 403,
    },
}
RUN_START = {
    "regulator": 403,
    "regulator2": 403,
    "shareholder": 403,
    "compliance": 400,
    "compliance2": 400,
    "auditor": 403,
    "admin": 403,
}


def test_consumer_scores_by_role_and_scope(api, demo):
    in_regulator = demo.consumer_in(CCF)
    in_shareholder_only = demo.consumer_in(YRD, not_in=(CCF,))
    failures = []
    for role, (in_scope, out_of_scope, unknown) in CONSUMER_OBJECT.items():
        for public_id, expected in (
            (in_regulator.public_id, in_scope),
            (in_shareholder_only.public_id, out_of_scope),
            (UNKNOWN_CONSUMER, unknown),
        ):
            status = api(role).get(f"/api/v1/consumers/{public_id}/scores/").status_code
            if status != expected:
                failures.append(f"{role} scores of {public_id}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_scoring_lists_by_role(api, demo):
    failures = []
    for path, expectations in SCORING_LISTS.items():
        for role, expected in expectations.items():
            status = api(role).get(path).status_code
            if status != expected:
                failures.append(f"{role} GET {path}: {status}, expected {expected}")
    assert not failures, "\n".join(failures)


def test_starting_a_run_by_role(api, demo):
    # An unknown model version: compliance gets the 400 that names it; every other role may never start one.
    for role, expected in RUN_START.items():
        response = api(role).post(
            "/api/v1/scoring/runs/",
            {"kind": "full", "version": "no-such-model"},
            content_type="application/json",
        )
        assert response.status_code == expected, role
        if expected == 400:
            assert "version" in response.json()
