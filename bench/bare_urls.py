"""The benchmark's own URL configuration: bare views that serve the same rows as the product's endpoints with
no authentication, no access policy and no audit, through the product's own row path (the page statement
compiled once per shape, plain rows shaped for orjson). They exist only here: in the product they would be a
second path to consumer data."""

from typing import Any

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.renderers import FastJSONRenderer
from portal.api.serializers import TRANSACTION_VALUES, transaction_rows
from portal.api.views.records import TRANSACTION_PAGES
from portal.records.models import Consumer, Transaction


class BareConsumerTransactions(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [FastJSONRenderer]

    def get(self, request: Request, public_id: str) -> Response:
        consumer = Consumer.objects.only("pk").get(public_id=public_id)

        def build(given: dict[str, Any]):
            return Transaction.objects.filter(consumer_id=given["consumer"]).values(*TRANSACTION_VALUES)

        page = TRANSACTION_PAGES.paginate_statement(
            request, "bench.consumer.transactions", Transaction, build, {"consumer": consumer.pk}
        )
        return Response(page.as_dict(transaction_rows(page.results)))


urlpatterns = [
    path("api/v1/consumers/<str:public_id>/transactions/", BareConsumerTransactions.as_view()),
]
