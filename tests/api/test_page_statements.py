"""Keyset.paginate_statement keeps a shape on the ORM wherever a compiled statement could answer otherwise."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Value
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from portal.accounts.models import Organisation
from portal.api import pagination


def _request() -> Request:
    return Request(APIRequestFactory().get("/api/v1/test/"))


def test_a_parameter_in_the_select_list_keeps_the_shape_on_the_orm(organisations):
    """Prepared, a parameter standing in the select list would be typed as text by the server: such a shape
    is never compiled, and its rows are the ORM's."""
    pages = pagination.Keyset("-id")

    def build(given):
        organisations = Organisation.objects.filter(pk__gt=given["low"])
        return organisations.annotate(tag=Value(given["low"])).values("id", "tag")

    page = pages.paginate_statement(_request(), "test.select-list", Organisation, build, {"low": 0})
    key = ("test.select-list", ("low",), True, False, settings.API_DEFAULT_PAGE_SIZE)
    assert pagination._STATEMENTS[key] is None
    assert page.results == list(build({"low": 0}).order_by("-id"))
    assert {row["tag"] for row in page.results} == {0}


def test_a_constant_of_the_queryset_keeps_the_shape_on_the_orm(organisations):
    pages = pagination.Keyset("-id")

    def build(given):
        return Organisation.objects.filter(pk__gt=given["low"], kind="regulator").values("id", "kind")

    page = pages.paginate_statement(_request(), "test.constant", Organisation, build, {"low": 0})
    key = ("test.constant", ("low",), True, False, settings.API_DEFAULT_PAGE_SIZE)
    assert pagination._STATEMENTS[key] is None
    assert page.results == [{"id": organisations["regulator"].pk, "kind": "regulator"}]
