"""The refresh's chunks on Citus: one shard each (deploy/SCALING.md §3.4).

Citus cannot run here, so the planner is given what a coordinator would give it: shard ranges as
create_distributed_table makes them (portal.citus.uniform_shards) in place of pg_dist_shard, and PostgreSQL's
hashint8, which is the function Citus's worker_hash applies to a bigint, in place of worker_hash. Everything
else runs for real: the planning query, the chunk statements naming their consumers, the scores.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from portal import citus
from portal.citus import HASH_MAX, HASH_MIN, ShardRange
from portal.records.models import Account, Consumer, Transaction
from scoring import services
from scoring.models import ChunkConsumers, CreditScore, ScoreChunk, ScoreRun
from scoring.scorecards import scored_sql
from tests.scoring.test_runs import start

SHARDS = citus.uniform_shards(4)


def test_uniform_shards_tile_the_hash_space_as_citus_splits_it():
    assert [(s.min_hash, s.max_hash) for s in SHARDS] == [
        (HASH_MIN, -(2**30) - 1),
        (-(2**30), -1),
        (0, 2**30 - 1),
        (2**30, HASH_MAX),
    ]
    # Not a power of two: equal parts of 2^32 // 3, the last one running to the end.
    three = citus.uniform_shards(3)
    assert three[1].min_hash - three[0].min_hash == 2**32 // 3
    assert three[-1].max_hash == HASH_MAX
    assert citus.checked_shards(three) == three


@pytest.mark.parametrize(
    "shards",
    [
        [],
        [ShardRange(1, HASH_MIN, 0)],  # ends short of the top
        [ShardRange(1, HASH_MIN, 0), ShardRange(2, 2, HASH_MAX)],  # a gap
        [ShardRange(1, HASH_MIN, 5), ShardRange(2, 2, HASH_MAX)],  # an overlap
        [ShardRange(1, HASH_MIN + 1, HASH_MAX)],  # starts above the bottom
    ],
)
def test_shards_that_do_not_tile_the_hash_space_are_refused(shards):
    with pytest.raises(ValueError):
        citus.checked_shards(shards)


def test_each_shards_consumers_are_cut_in_id_order_into_chunks_of_at_most_size():
    chunks = citus.shard_chunks([(7, [5, 1, 9, 3, 7]), (8, [2])], 2)
    assert chunks == [(7, [1, 3]), (7, [5, 7]), (7, [9]), (8, [2])]


@pytest.mark.parametrize("incremental", [False, True])
def test_with_ids_every_table_the_chunk_reads_names_its_consumers(scorecard, incremental):
    ctes, select, _params = scored_sql(connection, scorecard, incremental=incremental, by_ids=True)
    sql = f"WITH {ctes} {select}"
    # Consumers, accounts and transactions (and, incremental, the transactions of the watermark window).
    columns = re.findall(r"(\w+\.(?:consumer_)?id) = ANY\(%\(ids\)s::bigint\[\]\)", sql)
    assert sorted(columns) == sorted(
        ["c.id", "a.consumer_id", "t.consumer_id"]
        + (["n.consumer_id"] * 3 if incremental else [])  # the new-rows filter of each of the three reads
    )
    ranges = re.findall(r"(\w+\.(?:consumer_)?id) BETWEEN %\(lo\)s AND %\(hi\)s", sql)
    assert sorted(ranges) == sorted(columns)
    plain, _select, _ = scored_sql(connection, scorecard, incremental=incremental)
    assert "ANY(" not in plain


@pytest.fixture
def fake_citus(settings, monkeypatch):
    """What a Citus coordinator gives the planner: four shards and worker_hash (hashint8 for a bigint)."""
    settings.PORTAL_CITUS = True
    monkeypatch.setattr(citus, "consumer_shards", lambda cursor: SHARDS)
    monkeypatch.setattr(citus, "HASH_FUNCTION", "hashint8")


def listed(chunk: ScoreChunk) -> list[int]:
    return list(ChunkConsumers.objects.get(chunk=chunk).ids)


def shard_of(ids: list[int]) -> dict[int, int]:
    """Each id's shard, from PostgreSQL's hash of it and the shard ranges."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT g, hashint8(g) FROM unnest(%s::bigint[]) g", [ids])
        return {
            consumer: next(s.shard_id for s in SHARDS if s.min_hash <= value <= s.max_hash)
            for consumer, value in cursor.fetchall()
        }


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("eager")
def test_on_citus_every_chunk_holds_the_consumers_of_one_shard_and_scores_as_the_plain_planner(
    world, scorecard, compliance, settings, monkeypatch, fake_citus, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_SIZE = 10
    # The planning statement read one row at a time and chunks written two at a time: a shard's ids carry
    # over from one id window to the next, and the run's chunks arrive in several batches.
    monkeypatch.setattr(services, "PLAN_ROWS", 1)
    monkeypatch.setattr(services, "CHUNK_BATCH", 2)
    settings.PORTAL_CITUS = False
    plain = start(django_capture_on_commit_callbacks, kind="full", requested_by=compliance)
    settings.PORTAL_CITUS = True
    run = services.score_run_start(kind="full", requested_by=compliance)  # planned, chunks queued
    chunks = list(ScoreChunk.objects.filter(run=run).order_by("shard", "first_consumer_id"))
    lists = {chunk.pk: listed(chunk) for chunk in chunks}
    consumers = sorted(Consumer.objects.values_list("id", flat=True))
    owner = shard_of(consumers)
    assert sorted(i for ids in lists.values() for i in ids) == consumers  # each consumer in one chunk
    assert len({chunk.shard for chunk in chunks}) == len(SHARDS)  # 60 consumers reach all four shards
    for chunk in chunks:
        ids = lists[chunk.pk]
        assert 0 < chunk.consumers_planned == len(ids) <= 10
        assert ids == sorted(ids)
        assert (chunk.first_consumer_id, chunk.last_consumer_id) == (ids[0], ids[-1])
        assert {owner[i] for i in ids} == {chunk.shard}
    # A shard's chunks are full but for its last one.
    for _shard, group in itertools.groupby(chunks, key=lambda c: c.shard):
        sizes = [c.consumers_planned for c in group]
        assert all(size == 10 for size in sizes[:-1])
    assert run.consumers_planned == 60 and run.chunks_total == len(chunks)

    # Chunks of different shards overlap in id range: each scores, and copies to the consumers' current
    # score, only the consumers it names; its list goes once it is done.
    Consumer.objects.update(current_score=None)
    done: set[int] = set()
    for chunk in chunks:
        assert services.score_chunk_process(chunk_id=chunk.pk, task_id=f"t-{chunk.pk}") == len(
            lists[chunk.pk]
        )
        done |= set(lists[chunk.pk])
        assert set(Consumer.objects.filter(current_score__isnull=False).values_list("id", flat=True)) == done
        assert not ChunkConsumers.objects.filter(chunk=chunk).exists()
    run.refresh_from_db()
    assert (run.status, run.consumers_scored, run.chunks_done) == ("finished", 60, len(chunks))

    def scores(of):
        return set(
            CreditScore.objects.filter(run=of).values_list(
                "consumer_id", "value", "features_hash", "reason_1_code", "reason_2_code", "unclipped"
            )
        )

    assert scores(run) == scores(plain)


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.usefixtures("eager")
def test_on_citus_an_incremental_run_plans_only_the_consumers_with_new_transactions_by_shard(
    world, scorecard, compliance, fake_citus, django_capture_on_commit_callbacks
):
    start(django_capture_on_commit_callbacks, kind="full", requested_by=compliance)
    touched = list(Consumer.objects.order_by("id")[:12:2])
    for consumer in touched:
        Transaction.objects.create(
            consumer=consumer,
            account=Account.objects.filter(consumer=consumer).order_by("id")[0],
            kind="transfer_in",
            amount=8_000,
            occurred_at=timezone.now() - timedelta(days=30),
            channel="bank_transfer",
        )
    movers = [consumer.pk for consumer in touched]
    run = services.score_run_start(kind="incremental", requested_by=compliance)
    chunks = list(ScoreChunk.objects.filter(run=run))
    assert sorted(i for chunk in chunks for i in listed(chunk)) == sorted(movers)
    owner = shard_of(movers)
    assert all({owner[i] for i in listed(chunk)} == {chunk.shard} for chunk in chunks)
    assert ChunkConsumers.objects.count() == len(chunks)  # the full run's lists went with their chunks
    for chunk in chunks:
        services.score_chunk_process(chunk_id=chunk.pk, task_id=f"i-{chunk.pk}")
    run.refresh_from_db()
    assert (run.status, run.consumers_scored) == ("finished", len(movers))
    assert set(CreditScore.objects.filter(run=run).values_list("consumer_id", flat=True)) == set(movers)


@pytest.mark.django_db
def test_portal_citus_without_citus_refuses_to_plan_and_starts_nothing(world, scorecard, settings):
    settings.PORTAL_CITUS = True
    expected = "this database is sqlite" if connection.vendor == "sqlite" else "no Citus metadata"
    with pytest.raises(services.ScoringError, match=expected):
        services.score_run_start(kind="full")
    assert not ScoreChunk.objects.exists()
    assert not ScoreRun.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_shard_chunk_without_its_list_fails_rather_than_scoring_its_whole_range(
    world, scorecard, fake_citus
):
    run = services.score_run_start(kind="full")
    chunk = ScoreChunk.objects.filter(run=run).order_by("id").first()
    assert chunk is not None
    ChunkConsumers.objects.filter(chunk=chunk).delete()
    with pytest.raises(services.ScoringError, match="lost its list"):
        services.score_chunk_process(chunk_id=chunk.pk, task_id="t-lost")
    assert not CreditScore.objects.filter(run=run).exists()
