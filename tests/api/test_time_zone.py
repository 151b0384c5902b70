"""Every time the API answers is in China Standard Time (+08:00), whichever endpoint and whether a serializer
or a plain dict shaped it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def times_in(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from times_in(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from times_in(item, f"{where}[{index}]")
    elif isinstance(value, str) and ISO_TIME.match(value):
        yield where, value


@pytest.mark.parametrize(
    ("username", "path"),
    [
        ("regulator", "/api/v1/transactions/"),
        ("regulator", "/api/v1/grants/"),
        ("regulator", "/api/v1/scoring/models/"),
        ("compliance", "/api/v1/scoring/runs/"),
        ("auditor", "/api/v1/scoring/runs/"),
        ("auditor", "/api/v1/audit/events/"),
    ],
)
def test_every_time_in_an_answer_is_in_china_standard_time(api, username, path):
    response = api(username).get(path)
    assert response.status_code == 200, response.content
    found = list(times_in(response.json()))
    assert found, f"{path} answered no time to check"
    assert [(where, value) for where, value in found if not value.endswith("+08:00")] == []
