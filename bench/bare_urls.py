"""The benchmark's own URL configuration: bare views that serve the same rows as the product's endpoints with
no authentication, no access policy and no audit. They exist only here: in the product they would be a second
path to consumer data."""

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api.serializers import TransactionSerializer
from portal.api.views.records import TRANSACTION_PAGES
from portal.records.models import Consumer, Transaction


class BareConsumerTransactions(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request: Request, public_id: str) -> Response:
        consumer = Consumer.objects.get(public_id=public_id)
        rows = Transaction.objects.filter(consumer=consumer).select_related("consumer", "account", "merchant")
        page = TRANSACTION_PAGES.paginate(request, rows)
        return Response(page.as_dict(TransactionSerializer(page.results, many=True).data))


urlpatterns = [
    path("api/v1/consumers/<str:public_id>/transactions/", BareConsumerTransactions.as_view()),
]
