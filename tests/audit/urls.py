"""Test-only URL configuration: a view that serves consumer-like data and tells the recorder what it served,
as every data view of the portal does. Used by the fail-closed tests (settings.ROOT_URLCONF override)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from audit.recorder import note_for

CONSUMER = {"public_id": "CQ7RX2M9KD4T8WZB", "name": "张伟", "resident_id": "110101199003074514"}


def consumer_detail(request: HttpRequest) -> JsonResponse:
    note = note_for(request)
    note.action = "test.consumer_detail"
    note.resource_kind = "consumer"
    note.subjects = [CONSUMER["public_id"]]
    return JsonResponse(CONSUMER)


urlpatterns = [path("consumer/", consumer_detail, name="test-consumer-detail")]
