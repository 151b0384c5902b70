"""The refresh written for Citus's pushdown (deploy/SCALING.md §3.4): every CTE of the scoring statement
referenced once (PostgreSQL inlines them all: no CTE Scan in its plan), joins between the consumer's tables
on consumer_id, and with PORTAL_CITUS a chunk planner without a window over all ids, giving the same
scores as the plain planner."""

from __future__ import annotations

import itertools
import re

import pytest
from django.db import connection
from django.utils import timezone

from scoring import services
from scoring.features import Window
from scoring.models import CreditScore, ScoreChunk
from scoring.scorecards import scored_sql
from tests.scoring.test_runs import start


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


@pytest.mark.django_db
@pytest.mark.usefixtures("eager")
def test_the_citus_chunk_planner_covers_every_consumer_and_scores_as_the_plain_one(
    world, scorecard, compliance, settings, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_SIZE = 25
    plain = start(django_capture_on_commit_callbacks, kind="full", requested_by=compliance)
    settings.PORTAL_CITUS = True
    routed = start(django_capture_on_commit_callbacks, kind="full", requested_by=compliance)
    assert routed.status == plain.status == "finished"
    assert routed.consumers_scored == plain.consumers_scored == 60
    chunks = list(ScoreChunk.objects.filter(run=routed).order_by("first_consumer_id"))
    for chunk in chunks:
        assert chunk.consumers_planned <= 25
        assert chunk.last_consumer_id // 25 == chunk.first_consumer_id // 25  # one bucket of id values
    for before, after in itertools.pairwise(chunks):
        assert before.last_consumer_id < after.first_consumer_id
    assert sum(chunk.consumers_planned for chunk in chunks) == 60

    def scores(run):
        return set(
            CreditScore.objects.filter(run=run).values_list(
                "consumer_id", "value", "features_hash", "reason_1_code", "reason_2_code", "unclipped"
            )
        )

    assert scores(routed) == scores(plain)
    assert services.chunk_size() == 25
