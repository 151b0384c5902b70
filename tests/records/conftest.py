"""The demo world and its API clients, for the tests that check which partitions its queries read."""

from tests.api.conftest import api, demo  # noqa: F401  (fixtures)
