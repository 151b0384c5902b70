"""The admin console works with the demo credentials and grants no implicit scope over consumer data."""

import pytest
from django.conf import settings
from django.core.management import call_command

from portal.records.models import Consumer


@pytest.fixture
def demo(db):
    call_command("seed_demo", verbosity=0)


def test_admin_login_works_with_the_demo_credentials(client, demo):
    # Through the admin's login form: the lockout backend needs the request that client.login() lacks.
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "admin", "password": settings.DEMO_PASSWORD}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_superuser_sees_no_consumer_without_a_grant(admin_client_demo):
    response = admin_client_demo.get("/admin/records/consumer/")
    assert response.status_code == 200
    assert Consumer.objects.exists()
    assert response.context["cl"].result_count == 0


def test_consumer_data_is_read_only_in_the_admin(admin_client_demo):
    assert admin_client_demo.get("/admin/records/consumer/add/").status_code == 403
    assert admin_client_demo.get("/admin/records/transaction/add/").status_code == 403


def test_the_admin_never_shows_a_sequential_consumer_id(demo):
    consumer = Consumer.objects.earliest("pk")
    assert str(consumer) == consumer.public_id


@pytest.fixture
def admin_client_demo(client, demo):
    from portal.accounts.models import User

    client.force_login(User.objects.get(username="admin"))
    return client
