"""Score runs in-process (eager Celery): planning, idempotence, leases, incremental watermarks, auditing."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from audit.recorder import AuditWriteError
from portal.celery import app
from portal.records.models import Account, Consumer, Transaction
from scoring import services, tasks
from scoring.models import CreditScore, ScoreChunk, ScoreRun

pytestmark = pytest.mark.usefixtures("eager")


def start(django_capture_on_commit_callbacks, **kwargs) -> ScoreRun:
    """Start a run and let its chunk tasks run, as they do once the starting transaction commits."""
    with django_capture_on_commit_callbacks(execute=True):
        run = services.score_run_start(**kwargs)
    run.refresh_from_db()
    return run


def test_full_run_scores_every_consumer_once_in_chunks(
    world, scorecard, compliance, settings, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_SIZE = 25
    run = start(django_capture_on_commit_callbacks, kind="full", requested_by=compliance)
    assert (run.status, run.chunks_total, run.chunks_done, run.consumers_planned, run.consumers_scored) == (
        "finished",
        3,
        3,
        60,
        60,
    )
    assert run.finished_at and run.watermark_from == 0
    assert run.watermark_to == Transaction.objects.aggregate(top=Max("id"))["top"]
    assert list(
        ScoreChunk.objects.filter(run=run).values_list(
            "consumers_planned", "consumers_scored", "status", "attempts"
        )
    ) == [
        (25, 25, "done", 1),
        (25, 25, "done", 1),
        (10, 10, "done", 1),
    ]
    scores = CreditScore.objects.filter(run=run)
    assert scores.count() == 60
    assert not scores.values("consumer").annotate(n=Count("id")).filter(n__gt=1).exists()
    # Provenance on every score, and the consumers' current score is the new one.
    for score in scores.select_related("consumer"):
        assert 300 <= score.value <= 850
        assert score.scorecard_id == scorecard.pk
        assert score.watermark == run.watermark_to
        assert len(score.features_hash) == 64 and score.celery_task_id
        assert score.consumer.current_score == score.value
        assert score.reasons == sorted(score.reasons, key=lambda r: -r["points_lost"])
        assert all(r["text_en"] and r["text_zh"] for r in score.reasons)
    assert len(ScoreChunk.objects.filter(run=run).values_list("celery_task_id", flat=True).distinct()) == 3
    # Started and finished are audit events attributed to the requester.
    events = AuditEvent.objects.filter(resource_kind="score_run", requested_id=str(run.pk)).order_by("id")
    run.refresh_from_db()
    drift = [] if run.monitoring["level"] == "stable" else [(f"scoring.run.psi_{run.monitoring['level']}",)]
    assert [(e.action, e.outcome, e.actor_id, e.row_count) for e in events][:2] == [
        ("scoring.run.started", "allowed", compliance.pk, 60),
        ("scoring.run.finished", "allowed", compliance.pk, 60),
    ]
    assert [(e.action,) for e in events][2:] == drift
    # Stability against the development sample, per characteristic (the shipped card keeps bin counts).
    assert run.monitoring["scores"] == 60
    assert set(run.monitoring["features"]) == {f["code"] for f in scorecard.features}
    assert all(sum(f["counts"]) == 60 for f in run.monitoring["features"].values())


def test_rerunning_a_chunk_adds_nothing(world, scorecard, django_capture_on_commit_callbacks):
    run = start(django_capture_on_commit_callbacks, kind="full")
    chunk = ScoreChunk.objects.get(run=run)
    before = list(
        CreditScore.objects.order_by("id").values_list("id", "value", "computed_at", "celery_task_id")
    )
    # The task again (a duplicate message): the chunk is done, nothing to claim.
    assert tasks.score_chunk.apply(args=[chunk.pk]).get() is None
    # Even forced past the claim, the insert conflicts on (run, consumer) and writes nothing.
    with transaction.atomic():
        assert services._write_scores(chunk, run, "forced", timezone.now()) == 0
    assert (
        list(CreditScore.objects.order_by("id").values_list("id", "value", "computed_at", "celery_task_id"))
        == before
    )
    run.refresh_from_db()
    assert (run.chunks_done, run.consumers_scored) == (1, 60)


def test_a_second_full_run_is_refused_while_one_runs(world, scorecard):
    # Without the on-commit callbacks the first run stays running, its chunks queued.
    first = services.score_run_start(kind="full")
    with pytest.raises(services.RunAlreadyRunning):
        services.score_run_start(kind="full")
    # The database refuses it too, whatever the code checks first.
    with pytest.raises(IntegrityError), transaction.atomic():
        ScoreRun.objects.create(kind="full", scorecard=scorecard, as_of=timezone.now())
    # Other kinds have their own slot; a finished run frees its kind's.
    assert services.score_run_start(kind="incremental").status == "running"
    ScoreRun.objects.filter(pk=first.pk).update(status="finished")
    assert services.score_run_start(kind="full").status == "running"


def test_unknown_scorecard_version_and_kind_are_refused(world, scorecard):
    with pytest.raises(services.UnknownScorecard, match=r"1999\.9"):
        services.score_run_start(kind="full", version="1999.9")
    with pytest.raises(services.ScoringError, match="kind"):
        services.score_run_start(kind="nightly")
    assert services.score_run_start(kind="full", version=scorecard.version).scorecard == scorecard


def test_a_run_that_cannot_be_audited_does_not_start(world, scorecard, monkeypatch):
    def broken(**kwargs):
        raise AuditWriteError("disk full")

    monkeypatch.setattr("audit.recorder.record", broken)
    with pytest.raises(AuditWriteError):
        services.score_run_start(kind="full")
    assert not ScoreRun.objects.exists()
    assert not ScoreChunk.objects.exists()


def test_expired_lease_is_requeued_and_done_chunks_are_never_rescored(
    world, scorecard, settings, django_capture_on_commit_callbacks
):
    settings.SCORING_CHUNK_SIZE = 20
    run = services.score_run_start(kind="full")  # chunks queued, not run
    first, second, third = ScoreChunk.objects.filter(run=run).order_by("first_consumer_id")
    assert services.score_chunk_process(chunk_id=first.pk, task_id="worker-a") == 20
    # A worker claims the second chunk and dies: the chunk stays running under its lease.
    now = timezone.now()
    assert services._claim(second.pk, "worker-b", now)
    assert services.score_chunks_requeue_expired(now=now) == []
    # Later than every lease: the dead worker's chunk and the never-started third one go back on the queue.
    later = now + timedelta(seconds=services.lease_seconds() + 1)
    done_before = list(CreditScore.objects.order_by("id").values_list("id", "computed_at", "celery_task_id"))
    with django_capture_on_commit_callbacks(execute=True):
        requeued = services.score_chunks_requeue_expired(now=later)
    assert requeued == [second.pk, third.pk]
    run.refresh_from_db()
    assert (run.status, run.chunks_done, run.consumers_scored) == ("finished", 3, 60)
    assert CreditScore.objects.filter(run=run).count() == 60
    # The first chunk's scores are exactly those written the first time.
    assert (
        list(
            CreditScore.objects.filter(consumer_id__lte=first.last_consumer_id)
            .order_by("id")
            .values_list("id", "computed_at", "celery_task_id")
        )
        == done_before
    )
    assert {c.pk: (c.status, c.attempts) for c in ScoreChunk.objects.filter(run=run)} == {
        first.pk: ("done", 1),
        second.pk: ("done", 2),
        third.pk: ("done", 1),
    }


def test_a_chunk_out_of_attempts_fails_its_run(
    world, scorecard, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "_write_scores", broken)
    # Propagating, an eager task's retry would surface as an exception instead of running again.
    app.conf.task_eager_propagates = False
    run = start(django_capture_on_commit_callbacks, kind="full")
    chunk = ScoreChunk.objects.get(run=run)
    assert (chunk.status, chunk.attempts) == ("failed", services.MAX_ATTEMPTS)
    assert "disk on fire" in chunk.error
    assert (run.status, run.chunks_failed, run.consumers_scored) == ("failed", 1, 0)
    assert "disk on fire" in run.errors[0]
    assert list(
        AuditEvent.objects.filter(requested_id=str(run.pk)).order_by("id").values_list("action", "outcome")
    ) == [("scoring.run.started", "allowed"), ("scoring.run.finished", "error")]
    # A failed run does not move the watermark: the next incremental run starts from zero.
    monkeypatch.undo()
    incremental = start(django_capture_on_commit_callbacks, kind="incremental")
    assert (incremental.watermark_from, incremental.consumers_scored) == (0, 60)


def test_incremental_run_scores_only_consumers_with_new_transactions(
    world, scorecard, django_capture_on_commit_callbacks
):
    full = start(django_capture_on_commit_callbacks, kind="full")
    with pytest.raises(services.NothingToScore):
        services.score_run_start(kind="incremental")
    # Two late-arriving rows: higher ids, but timestamps a year old.
    touched = list(Consumer.objects.order_by("id")[5:7])
    for consumer in touched:
        account = Account.objects.filter(consumer=consumer).order_by("id")[0]
        Transaction.objects.create(
            consumer=consumer,
            account=account,
            kind="transfer_in",
            amount=8_000,
            occurred_at=timezone.now() - timedelta(days=365),
            channel="bank_transfer",
        )
    run = start(django_capture_on_commit_callbacks, kind="incremental")
    assert run.watermark_from == full.watermark_to
    assert run.watermark_to == Transaction.objects.aggregate(top=Max("id"))["top"]
    assert (run.status, run.consumers_planned, run.consumers_scored) == ("finished", 2, 2)
    assert set(CreditScore.objects.filter(run=run).values_list("consumer_id", flat=True)) == {
        c.pk for c in touched
    }
    # History: the two consumers now have two scores each, everyone else one.
    assert CreditScore.objects.count() == 62
    # And the beat task starts the next incremental run only when something new arrived.
    assert tasks.start_incremental_refresh.apply().get() is None


def test_current_score_never_goes_back_to_older_data(world, scorecard, django_capture_on_commit_callbacks):
    start(django_capture_on_commit_callbacks, kind="full")
    consumer = Consumer.objects.order_by("id")[0]
    newest = CreditScore.objects.filter(consumer=consumer).get()
    # A score from an older watermark, written later (a slow run finishing after a newer one): history only.
    old_run = ScoreRun.objects.create(
        kind="incremental", scorecard=scorecard, as_of=timezone.now(), status="finished"
    )
    CreditScore.objects.create(
        run=old_run,
        consumer=consumer,
        scorecard=scorecard,
        value=301,
        computed_at=timezone.now(),
        watermark=1,
        features_hash="0" * 64,
    )
    chunk = ScoreChunk.objects.create(
        run=old_run,
        first_consumer_id=consumer.pk,
        last_consumer_id=consumer.pk,
        consumers_planned=1,
        lease_expires_at=timezone.now(),
    )
    services._update_current_scores(chunk, old_run)
    consumer.refresh_from_db()
    assert consumer.current_score == newest.value != 301


@pytest.mark.parametrize("chunk_size", [10, 40])
def test_a_chunk_costs_the_same_queries_whatever_its_size(
    world, scorecard, settings, chunk_size, django_assert_num_queries
):
    settings.SCORING_CHUNK_SIZE = chunk_size
    run = services.score_run_start(kind="full")
    chunks = list(ScoreChunk.objects.filter(run=run).order_by("first_consumer_id"))
    savepoints = 2 if connection.features.uses_savepoints else 0  # the test's transaction makes atomic() nest
    tuning = 1 if connection.vendor == "postgresql" else 0  # set_config(jit, work_mem) for the transaction
    # 1 claim UPDATE; 2 SELECT chunk, run and scorecard; 3 INSERT ... SELECT of the scores; 4 UPDATE of
    # current scores; 5 UPDATE chunk done; 6 SELECT run FOR UPDATE; 7 UPDATE run counters.
    with django_assert_num_queries(7 + savepoints + tuning):
        assert services.score_chunk_process(chunk_id=chunks[0].pk, task_id="t-0") == chunk_size
    # The last chunk also finishes the run: 8 UPDATE run status; 9 INSERT audit event (in its own savepoint);
    # on PostgreSQL, set_config making that commit synchronous again.
    for index, chunk in enumerate(chunks[1:-1], start=1):
        services.score_chunk_process(chunk_id=chunk.pk, task_id=f"t-{index}")
    # The run's stability: its scorecard, two aggregates over its scores; a drift past 0.1 adds one more
    # event (its savepoint, INSERT and release). None of it depends on the run's size.
    with CaptureQueriesContext(connection) as finishing:
        services.score_chunk_process(chunk_id=chunks[-1].pk, task_id="t-last")
    run.refresh_from_db()
    assert run.status == "finished"
    drift = 0 if run.monitoring["level"] == "stable" else 1 + savepoints
    assert len(finishing.captured_queries) == 9 + savepoints + 2 * tuning + 2 + 3 + drift


def test_beat_tasks_are_registered_under_the_scheduled_names(db, settings):
    for entry in ("scoring-incremental-refresh", "scoring-requeue-expired-chunks"):
        assert settings.CELERY_BEAT_SCHEDULE[entry]["task"] in app.tasks
    assert tasks.requeue_expired_chunks.apply().get() == 0


def test_an_empty_database_finishes_at_once(db, scorecard):
    assert not Consumer.objects.exists()
    run = services.score_run_start(kind="full")
    assert (run.status, run.chunks_total) == ("finished", 0)
