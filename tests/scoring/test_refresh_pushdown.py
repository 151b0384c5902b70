"""The refresh written for Citus's pushdown (deploy/SCALING.md §3.4): every CTE of the scoring statement
referenced once (PostgreSQL inlines them all: no CTE Scan in its plan) and joins between the consumer's
tables on consumer_id. The chunks of one shard each are tested in test_shard_chunks.py."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.utils import timezone

from scoring.features import Window
from scoring.scorecards import scored_sql


def cte_references(sql: str) -> dict[str, int]:
    names = re.findall(r"(?:WITH|,)\s*(\w+) AS \(", sql)
    assert names, "no CTE found"
    return {name: len(re.findall(rf"(?:FROM|JOIN)\s+{name}\b", sql)) for name in names}


@pytest.mark.django_db
@pytest.mark.parametrize("incremental", [False, True])
def test_every_cte_of_the_scoring_statement_is_referenced_once(scorecard, incremental):
    ctes, select, _params = scored_sql(connection, scorecard, incremental=incremental)
    references = cte_references(f"WITH {ctes} {select}")
    assert set(references) >= {"t", "a", "f", "p"}
    assert all(count == 1 for count in references.values()), references
    # Accounts join their transactions on the distribution column as well as on the account.
    assert "a.consumer_id = t.consumer_id AND a.id = t.account_id" in ctes


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_inlines_every_cte_of_the_scoring_statement(world, scorecard):
    ctes, select, params = scored_sql(connection, scorecard)
    window = Window(cutoff=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN WITH {ctes} {select}",
            {**params, **window.params(connection), "lo": 0, "hi": 10**12},
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "CTE Scan" not in plan and "CTE " not in plan, plan
