"""Writes of the scoring app: installing scorecards, starting score runs, and processing their chunks.

A run is planned in one transaction (the run, its chunks, its audit event) and its chunk tasks are enqueued
only once that commits. Each chunk is claimed with a lease in the database, scored with one INSERT ... SELECT
and one set-based UPDATE of current scores, and marked done in the same transaction, so a chunk is either
wholly done or not at all, and re-running it adds nothing (unique per run and consumer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from audit import recorder
from portal import citus
from portal.records.models import Consumer, Transaction
from scoring import calibration, monitoring, quality
from scoring.features import FEATURES, FEATURES_BY_CODE, GROUPS, MISSING_REASONS, Window, in_chunk
from scoring.models import ChunkConsumers, CreditScore, Scorecard, ScoreChunk, ScoreRun
from scoring.scorecards import scored_sql

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock key serialising run starts (b"scoring" as an integer): two starts behind a barrier
# queue here instead of both planning, and the partial unique constraint still refuses the second.
RUN_START_LOCK = 0x73636F72696E67
MAX_ATTEMPTS = 3


class ScoringError(Exception):
    """A scoring request that cannot go ahead; the message says why and is safe to show the requester."""


class UnknownScorecard(ScoringError):
    pass


class RunAlreadyRunning(ScoringError):
    pass


class NothingToScore(ScoringError):
    pass


class LeaseLost(Exception):
    """This task's claim on a chunk lapsed and another task took it over: that task will finish it."""


def chunk_size() -> int:
    return int(getattr(settings, "SCORING_CHUNK_SIZE", 5_000))


def lease_seconds() -> int:
    """How long a claim lasts: beyond the chunk task's hard time limit, so a live task never loses its chunk,
    and short enough that a dead worker's chunk is retried within minutes."""
    return int(getattr(settings, "SCORING_CHUNK_LEASE_SECONDS", 10 * 60))


# --- Scorecards -------------------------------------------------------------------------------------------
SCORECARD_FIELDS = (
    "name",
    "pdo",
    "base_score",
    "base_odds",
    "base_points",
    "features",
    "missing_groups",
    "metrics",
)


def holdout_report(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The validation report of a scorecard calibrated by calibrate_scorecard: its AUC and default rates by
    decile measured on a second generator seed (held out, never seen in calibration). Empty without one."""
    validation = metrics.get("validation") or {}
    auc = metrics.get("auc")
    if auc is None or not validation:
        return {}
    return {
        "holdout_auc": auc,
        "gini": round(2 * auc - 1, 4),
        "holdout": validation,
        "calibration_auc": (metrics.get("calibration") or {}).get("auc"),
        "deciles": metrics.get("deciles", []),
        "deciles_fall_monotonically": metrics.get("deciles_fall_monotonically"),
        "method": metrics.get("method", ""),
    }


@transaction.atomic
def scorecard_import(*, definition: Mapping[str, Any]) -> Scorecard:
    """Install a scorecard from its JSON definition (as calibrate_scorecard writes it) as a draft with its
    held-out validation report: it scores nothing until it has been validated, approved by a second person
    and activated (model_validate, model_approve, model_activate). Idempotent per version: an existing
    version is left as it is, since scores already point at it; only a draft without a report gets one."""
    report = holdout_report(definition.get("metrics") or {})
    detail = {
        "file": f"scorecard-{definition['version']}.json",
        "calibrated_by": "manage.py calibrate_scorecard",
    }
    scorecard, created = Scorecard.objects.get_or_create(
        version=definition["version"],
        defaults={
            **{name: definition[name] for name in SCORECARD_FIELDS},
            "report": report,
            "source_detail": detail,
        },
    )
    if not created and scorecard.status == Scorecard.Status.DRAFT and not scorecard.report and report:
        scorecard.report, scorecard.source_detail = report, scorecard.source_detail or detail
        scorecard.save(update_fields=["report", "source_detail"])
    return scorecard


def _scorecard_activate(*, scorecard: Scorecard, actor: Any) -> Scorecard:
    """Make `scorecard` the one scoring the portal; the previous active one is retired and stays readable.
    The only write of is_active=True, reached only through model_activate (inside its transaction)."""
    if scorecard.source == Scorecard.Source.EXTERNAL:
        raise GovernanceError("a model fitted on an external extract is never activated")
    now = timezone.now()
    # Deactivate first: the partial unique constraint allows one active row at every instant.
    Scorecard.objects.filter(is_active=True).exclude(pk=scorecard.pk).update(
        is_active=False, status=Scorecard.Status.RETIRED
    )
    Scorecard.objects.filter(pk=scorecard.pk).update(
        is_active=True, status=Scorecard.Status.ACTIVE, activated_at=now, activated_by=actor
    )
    scorecard.is_active, scorecard.status = True, Scorecard.Status.ACTIVE
    scorecard.activated_at, scorecard.activated_by = now, actor
    return scorecard


# --- Governance: draft -> validated -> approved (by a second person) -> active ------------------------------
class GovernanceError(ScoringError):
    """A lifecycle step refused: wrong state, the fitter approving their own model, an external model."""


def _model_event(actor: Any, action: str, scorecard: Scorecard, outcome: str = "allowed") -> None:
    recorder.record(
        actor=actor,
        action=action,
        outcome=outcome,
        resource_kind="scorecard",
        requested_id=scorecard.version,
    )


@transaction.atomic
def model_store_draft(*, fitted_by: Any, **fields: Any) -> Scorecard:
    """Store a fitted model as a draft (fit_scorecard), with its fitting event in the same transaction."""
    if Scorecard.objects.filter(version=fields["version"]).exists():
        raise GovernanceError(f"version {fields['version']} exists already: versions are never overwritten")
    scorecard = Scorecard.objects.create(
        status=Scorecard.Status.DRAFT, fitted_by=fitted_by, fitted_at=timezone.now(), **fields
    )
    _model_event(fitted_by, "scoring.model.fitted", scorecard)
    return scorecard


def _locked(scorecard: Scorecard) -> Scorecard:
    return Scorecard.objects.select_for_update().get(pk=scorecard.pk)


def _step(scorecard: Scorecard, actor: Any, *, expected: str, action: str) -> Scorecard:
    """Checks every step shares: the actor is a compliance officer, not the model's fitter, and the model
    is in the state the step starts from. A refusal is written to the trail too (outside the rollback)."""
    if getattr(actor, "role", None) != "compliance":
        raise GovernanceError("only a compliance officer takes a model through its lifecycle")
    card = _locked(scorecard)
    if card.fitted_by_id is not None and card.fitted_by_id == actor.pk:
        raise GovernanceError(
            "the person who fitted a model may not validate, approve or activate it: a second person must"
        )
    if card.status != expected:
        raise GovernanceError(f"model {card.version} is {card.status}; this step needs it {expected}")
    return card


def _refused(actor: Any, action: str, scorecard: Scorecard) -> None:
    """The refusal's event, once the refused step's transaction is rolled back."""
    try:
        _model_event(actor, action, scorecard, outcome="denied")
    except recorder.AuditWriteError:
        logger.exception("refused %s on %s could not be audited", action, scorecard.version)


Step = Callable[..., Scorecard]


def _guarded(action: str) -> Callable[[Step], Step]:
    """Run a step in its own transaction; if it is refused, write the refusal once that is rolled back."""

    def wrap(step: Step) -> Step:
        def run(*, scorecard: Scorecard, actor: Any) -> Scorecard:
            try:
                with transaction.atomic():
                    return step(scorecard=scorecard, actor=actor)
            except GovernanceError:
                _refused(actor, action, scorecard)
                raise

        run.__doc__ = step.__doc__
        run.__name__ = step.__name__
        return run

    return wrap


@_guarded("scoring.model.validated")
def model_validate(*, scorecard: Scorecard, actor: Any) -> Scorecard:
    """draft -> validated: an independent reviewer accepts the validation report attached at fitting."""
    card = _step(scorecard, actor, expected=Scorecard.Status.DRAFT, action="scoring.model.validated")
    if not (card.report.get("cv_auc") or card.report.get("holdout_auc")):
        raise GovernanceError(f"model {card.version} has no validation report")
    card.status, card.validated_by, card.validated_at = Scorecard.Status.VALIDATED, actor, timezone.now()
    card.save(update_fields=["status", "validated_by", "validated_at"])
    _model_event(actor, "scoring.model.validated", card)
    return card


@_guarded("scoring.model.approved")
def model_approve(*, scorecard: Scorecard, actor: Any) -> Scorecard:
    """validated -> approved, by a second person: never the one who fitted it, nor the one who validated
    it."""
    card = _step(scorecard, actor, expected=Scorecard.Status.VALIDATED, action="scoring.model.approved")
    if card.validated_by_id == actor.pk:
        raise GovernanceError("the person who validated a model may not approve it: a second person must")
    card.status, card.approved_by, card.approved_at = Scorecard.Status.APPROVED, actor, timezone.now()
    card.save(update_fields=["status", "approved_by", "approved_at"])
    _model_event(actor, "scoring.model.approved", card)
    return card


@_guarded("scoring.model.activated")
def model_activate(*, scorecard: Scorecard, actor: Any) -> Scorecard:
    """approved -> active; the previous active model is retired (still readable, its scores unchanged)."""
    card = _step(scorecard, actor, expected=Scorecard.Status.APPROVED, action="scoring.model.activated")
    if card.source == Scorecard.Source.EXTERNAL:
        raise GovernanceError(
            "a model fitted on an external extract is a validation artefact: its features are not the "
            "portal's, so it is never activated"
        )
    previous = Scorecard.objects.filter(is_active=True).exclude(pk=card.pk).first()
    _scorecard_activate(scorecard=card, actor=actor)
    _model_event(actor, "scoring.model.activated", card)
    if previous is not None:
        _model_event(actor, "scoring.model.retired", previous)
    return card


LIFECYCLE = {"validate": model_validate, "approve": model_approve, "activate": model_activate}


# --- Runs -------------------------------------------------------------------------------------------------
class PlannedChunk(NamedTuple):
    """A chunk of one Citus shard, as planned: its first and last consumer id, and all of them."""

    first: int
    last: int
    consumers: int
    shard: int
    ids: list[int]


def _ids_sql(incremental: bool) -> str:
    """The consumers a run scores: all of them, or those with a transaction in the watermark window."""
    consumer, txn = Consumer._meta.db_table, Transaction._meta.db_table
    if incremental:
        return (
            f"SELECT DISTINCT consumer_id AS id FROM {txn} "  # noqa: S608 - table names from _meta
            "WHERE id > %(watermark_from)s AND id <= %(watermark_to)s"
        )
    return f"SELECT id FROM {consumer}"  # noqa: S608


def _plan_sql(incremental: bool) -> str:
    """(first id, last id, count) of each chunk: consecutive consumer ids, `size` consumers each."""
    return f"""
SELECT MIN(id), MAX(id), COUNT(*) FROM (
  SELECT id, (ROW_NUMBER() OVER (ORDER BY id) - 1) / %(size)s AS bucket FROM ({_ids_sql(incremental)}) ids
) buckets GROUP BY bucket ORDER BY bucket"""  # noqa: S608


def _shard_plan_sql(incremental: bool, hash_function: str) -> str:
    """Each shard's consumers in id windows: (shard number, window, ids), one row per shard and window.

    The shard number is the bucket of the id's hash among the shards' lower bounds (width_bucket: 1 for
    the first shard); windows are `window` id values wide, so that a shard's part of one holds about `size`
    consumers. Nothing here is ordered or windowed over all ids: every shard computes its own groups and
    array_agg partials, which the coordinator merges (Citus ships array_cat_agg for that), and only the
    ids travel, once."""
    return f"""
SELECT width_bucket({hash_function}(id), %(bounds)s::int[]), id / %(window)s, array_agg(id)
FROM ({_ids_sql(incremental)}) ids GROUP BY 1, 2 ORDER BY 1, 2"""  # noqa: S608


# Rows of the planning statement fetched at a time, and chunks written at a time: a few million ids in
# memory at most, whatever the run's size.
PLAN_ROWS = 100
CHUNK_BATCH = 200


def _shard_chunk_batches(
    shards: list[citus.ShardRange], incremental: bool, params: dict[str, Any]
) -> Iterator[list[PlannedChunk]]:
    """The run's chunks on Citus, in batches (deploy/SCALING.md §3.4): each consumer goes to the shard its
    id hashes into, and each shard's consumers are cut, in id order, into chunks of at most `size`.

    The planning statement returns one row per shard and id window, ordered by both, through a server-side
    cursor; a shard's ids carry over from one window to the next until they fill a chunk, so chunks are
    full but for each shard's last."""
    size = params["size"]
    batch: list[PlannedChunk] = []
    shard: int | None = None
    pending: list[int] = []

    def cut(ids: list[int]) -> list[PlannedChunk]:
        if shard is None:
            return []
        return [
            PlannedChunk(p[0], p[-1], len(p), shard, p) for _s, p in citus.shard_chunks([(shard, ids)], size)
        ]

    with connection.chunked_cursor() as rows:
        rows.execute(
            _shard_plan_sql(incremental, citus.HASH_FUNCTION),
            {**params, "bounds": [s.min_hash for s in shards], "window": size * len(shards)},
        )
        while fetched := rows.fetchmany(PLAN_ROWS):
            for number, _window, ids in fetched:
                if shards[number - 1].shard_id != shard:
                    batch += cut(pending)
                    shard, pending = shards[number - 1].shard_id, []
                pending += sorted(ids)  # windows arrive in id order, so pending stays sorted
                full = len(pending) - len(pending) % size
                batch += cut(pending[:full])
                pending = pending[full:]
            if len(batch) >= CHUNK_BATCH:
                yield batch
                batch = []
    batch += cut(pending)
    if batch:
        yield batch


def _sequential_multi_shard() -> None:
    """Citus, for this transaction: one connection per worker for multi-shard writes. The lists of a run's
    chunks go to many shards of a table whose foreign key points at the chunk rows just written to a
    reference table, and Citus refuses that write in parallel mode within the same transaction (its
    relation access tracking: "cannot execute parallel ... because there is a foreign key"), naming this
    setting as the remedy. The same setting is a harmless placeholder on plain PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('citus.multi_shard_modify_mode', 'sequential', true)")


def _lock_run_starts() -> None:
    """Serialise run starts, and make the watermark exact.

    Ids are drawn when rows are inserted, not when they commit: a transaction still open could commit an id
    below the highest one visible now, and an incremental run starting above it would never score that row.
    A SHARE lock on the transactions table waits for every open insert to commit (and holds new ones back
    until this start commits, a second or so), so every id up to the maximum read next is visible.
    SQLite needs neither: its transactions begin IMMEDIATE (settings), so writers are serialised already.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RUN_START_LOCK])
            cursor.execute("SET LOCAL lock_timeout = '60s'")
            try:
                with transaction.atomic():
                    cursor.execute(f"LOCK TABLE {Transaction._meta.db_table} IN SHARE MODE")
            except OperationalError:
                raise ScoringError("transactions were being written for a minute: try again later") from None


def score_run_start(
    *,
    kind: str,
    requested_by: Any = None,
    version: str | None = None,
    celery_task_id: str = "",
) -> ScoreRun:
    """Start a full or incremental refresh with the active scorecard (or the one named by `version`).

    Raises UnknownScorecard, RunAlreadyRunning (one running run per kind), NothingToScore (an incremental run
    with no new transactions) and audit.recorder.AuditWriteError: a run that cannot be audited does not start.
    """
    if kind not in ScoreRun.Kind.values:
        raise ScoringError(f"unknown run kind {kind!r}: use one of {', '.join(ScoreRun.Kind.values)}")
    with transaction.atomic():
        if version is None:
            scorecard = Scorecard.objects.filter(is_active=True).first()
            if scorecard is None:
                raise UnknownScorecard("no scorecard is active")
        else:
            scorecard = Scorecard.objects.filter(version=version).first()
            if scorecard is None:
                raise UnknownScorecard(f"unknown scorecard version {version!r}")
        _lock_run_starts()
        # Under the lock this check cannot race; the constraint below is the guarantee regardless.
        if ScoreRun.objects.filter(kind=kind, status=ScoreRun.Status.RUNNING).exists():
            raise RunAlreadyRunning(f"a {kind} run is already running")

        now = timezone.now()
        watermark_to = Transaction.objects.aggregate(top=Max("id"))["top"] or 0
        watermark_from = 0
        if kind == ScoreRun.Kind.INCREMENTAL:
            finished = ScoreRun.objects.filter(status=ScoreRun.Status.FINISHED).aggregate(
                top=Max("watermark_to")
            )
            watermark_from = min(finished["top"] or 0, watermark_to)
            if watermark_from == watermark_to:
                raise NothingToScore("no transactions have arrived since the last finished run")
        incremental = kind == ScoreRun.Kind.INCREMENTAL
        params = {"size": chunk_size(), "watermark_from": watermark_from, "watermark_to": watermark_to}
        run = ScoreRun(
            kind=kind,
            scorecard=scorecard,
            requested_by=requested_by,
            celery_task_id=celery_task_id,
            created_at=now,
            as_of=now,
            watermark_from=watermark_from,
            watermark_to=watermark_to,
        )
        # A pending chunk's lease says by when its queued task should have claimed it.
        lease = now + timedelta(seconds=lease_seconds())
        if settings.PORTAL_CITUS:
            chunk_ids = _plan_by_shard(run, incremental, params, lease)
        else:
            with connection.cursor() as cursor:
                cursor.execute(_plan_sql(incremental), params)
                plan = cursor.fetchall()
            run.consumers_planned = sum(count for _first, _last, count in plan)
            run.chunks_total = len(plan)
            _save_new_run(run)
            chunks = ScoreChunk.objects.bulk_create(
                ScoreChunk(
                    run=run,
                    first_consumer_id=first,
                    last_consumer_id=last,
                    consumers_planned=count,
                    lease_expires_at=lease,
                )
                for first, last, count in plan
            )
            chunk_ids = [chunk.pk for chunk in chunks]
        recorder.record(
            actor=requested_by,
            action="scoring.run.started",
            outcome="allowed",
            resource_kind="score_run",
            requested_id=str(run.pk),
            row_count=run.consumers_planned,
        )
        if not chunk_ids:  # no consumers at all: the run is complete as planned
            _finish(run, now)
        for chunk_id in chunk_ids:
            _enqueue(chunk_id)
    return run


def _save_new_run(run: ScoreRun) -> None:
    """Insert the run; the partial unique constraint refuses a second running run of its kind."""
    try:
        with transaction.atomic():
            run.save(force_insert=True)
    except IntegrityError:
        raise RunAlreadyRunning(f"a {run.kind} run is already running") from None


def _plan_by_shard(run: ScoreRun, incremental: bool, params: dict[str, Any], lease: datetime) -> list[int]:
    """Citus: save the run, then its chunks of one shard each with their lists of consumers, batch by batch
    as the planning statement streams them (a full refresh names every consumer once: never all in memory).
    Returns the chunks' ids."""
    if connection.vendor != "postgresql":
        raise ScoringError(f"PORTAL_CITUS is set but this database is {connection.vendor}")
    with connection.cursor() as cursor:
        try:
            shards = citus.consumer_shards(cursor)
        except ValueError as exc:
            raise ScoringError(str(exc)) from None
    _save_new_run(run)
    _sequential_multi_shard()
    chunk_ids: list[int] = []
    for batch in _shard_chunk_batches(shards, incremental, params):
        chunks = ScoreChunk.objects.bulk_create(
            ScoreChunk(
                run=run,
                first_consumer_id=planned.first,
                last_consumer_id=planned.last,
                consumers_planned=planned.consumers,
                shard=planned.shard,
                lease_expires_at=lease,
            )
            for planned in batch
        )
        ChunkConsumers.objects.bulk_create(
            ChunkConsumers(chunk=chunk, ids=planned.ids) for chunk, planned in zip(chunks, batch, strict=True)
        )
        chunk_ids += [chunk.pk for chunk in chunks]
        run.consumers_planned += sum(planned.consumers for planned in batch)
    run.chunks_total = len(chunk_ids)
    ScoreRun.objects.filter(pk=run.pk).update(
        consumers_planned=run.consumers_planned, chunks_total=run.chunks_total
    )
    return chunk_ids


def _enqueue(chunk_id: int) -> None:
    """Send the chunk's task once the transaction that created (or re-leased) it commits. Robust: a broker
    hiccup must not undo a committed run; the chunk's lease then lapses and the requeue task resends it."""
    from scoring.tasks import score_chunk

    def send_score_chunk() -> None:  # a named function: Django logs a robust callback's __qualname__
        score_chunk.delay(chunk_id)

    transaction.on_commit(send_score_chunk, robust=True)


def _finish(run: ScoreRun, now: datetime) -> None:
    """Mark a run whose every chunk is done as finished, with its audit event, inside the caller's
    transaction: the run does not count as finished (its watermark does not advance) without its event."""
    run.status = ScoreRun.Status.FINISHED
    run.finished_at = now
    _durable_commit()
    run.monitoring = run_stability(run)
    ScoreRun.objects.filter(pk=run.pk).update(status=run.status, finished_at=now, monitoring=run.monitoring)
    recorder.record(
        actor=run.requested_by,
        action="scoring.run.finished",
        outcome="allowed",
        resource_kind="score_run",
        requested_id=str(run.pk),
        row_count=run.consumers_scored,
    )
    if run.monitoring["level"] in ("warning", "alert"):
        drifted = [c for c, f in run.monitoring["features"].items() if f["level"] != "stable"]
        recorder.record(
            actor=run.requested_by,
            action=f"scoring.run.psi_{run.monitoring['level']}",
            outcome="allowed",
            resource_kind="score_run",
            requested_id=str(run.pk),
            row_count=run.consumers_scored,
            purpose=(
                f"PSI {run.monitoring['psi']} against scorecard {run.scorecard.version}'s development "
                f"sample; characteristics past 0.1: {', '.join(drifted) or 'none'}"
            )[:500],
        )


def run_stability(run: ScoreRun) -> dict[str, Any]:
    """The run's score distribution and PSI against its scorecard's development sample: in total (score
    bands at the development deciles) and per characteristic (bins by the points they give, read from each
    score's points lost). Two aggregate queries over the run's scores."""
    table = CreditScore._meta.db_table
    each = (
        "jsonb_each_text(s.points_lost)" if connection.vendor == "postgresql" else "json_each(s.points_lost)"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value, COUNT(*) FROM {table} WHERE run_id = %s GROUP BY value", [run.pk])  # noqa: S608
        values = cursor.fetchall()
        cursor.execute(
            f"SELECT j.key, j.value, COUNT(*) FROM {table} s, {each} j"  # noqa: S608
            " WHERE s.run_id = %s AND s.points_lost IS NOT NULL GROUP BY j.key, j.value",
            [run.pk],
        )
        lost = cursor.fetchall()
    card = run.scorecard
    scores = [int(v) for v, n in values for _ in range(n)]
    development = card.development or {}
    result: dict[str, Any] = {"scores": len(scores), "psi": None, "level": "none", "features": {}}
    if "score_edges" in development:
        edges = development["score_edges"]
        actual = monitoring.band_counts(scores, edges)
        value = monitoring.psi(development["score_counts"], actual)
        result.update(
            {
                "score_edges": edges,
                "score_counts": actual,
                "development_counts": development["score_counts"],
                "psi": round(value, 4),
                "level": monitoring.level(value),
            }
        )
    by_feature: dict[str, dict[int, int]] = {}
    for code, points_lost, count in lost:
        by_feature.setdefault(code, {})[int(points_lost)] = int(count)
    worst = 0.0
    for feature in card.features:
        best = max(b["points"] for b in feature["bins"])
        earned = {best - k: n for k, n in by_feature.get(feature["code"], {}).items()}
        expected, actual = monitoring.points_counts(feature["bins"], earned)
        if not sum(actual) or not sum(expected):
            continue
        value = monitoring.psi(expected, actual)
        worst = max(worst, value)
        result["features"][feature["code"]] = {
            "psi": round(value, 4),
            "level": monitoring.level(value),
            "points": sorted({int(b["points"]) for b in feature["bins"]}),
            "development_counts": expected,
            "counts": actual,
        }
    if result["psi"] is None and result["features"]:
        result["level"] = monitoring.level(worst)  # no development score distribution: the worst feature
    elif result["features"]:
        result["level"] = monitoring.level(max(result["psi"], worst))
    return result


def _fail(run: ScoreRun, now: datetime, error: str) -> None:
    run.status = ScoreRun.Status.FAILED
    run.finished_at = now
    _durable_commit()
    run.errors = [*run.errors, error][-50:]
    ScoreRun.objects.filter(pk=run.pk).update(status=run.status, finished_at=now, errors=run.errors)
    recorder.record(
        actor=run.requested_by,
        action="scoring.run.finished",
        outcome="error",
        resource_kind="score_run",
        requested_id=str(run.pk),
        row_count=run.consumers_scored,
    )


# --- Chunks -----------------------------------------------------------------------------------------------
def _claim(chunk_id: int, task_id: str, now: datetime) -> bool:
    """Take the chunk if it is pending, or running under a lease that lapsed, and its run still runs.

    One UPDATE whose conditions are on the chunk row itself: on PostgreSQL a second claimer blocks on the row,
    then re-checks them against the first claimer's committed row and finds it taken.
    """
    chunk, run = ScoreChunk._meta.db_table, ScoreRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {chunk} SET status = 'running', lease_expires_at = %(lease)s, attempts = attempts + 1,
                  celery_task_id = %(task)s, started_at = %(now)s
                WHERE id = %(id)s AND attempts < %(max)s
                  AND (status = 'pending' OR (status = 'running' AND lease_expires_at < %(now)s))
                  AND run_id IN (SELECT r.id FROM {run} r WHERE r.status = 'running')""",  # noqa: S608
            {
                "lease": connection.ops.adapt_datetimefield_value(now + timedelta(seconds=lease_seconds())),
                "task": task_id,
                "now": connection.ops.adapt_datetimefield_value(now),
                "id": chunk_id,
                "max": MAX_ATTEMPTS,
            },
        )
        return cursor.rowcount == 1


def score_chunk_process(*, chunk_id: int, task_id: str) -> int | None:
    """Score one chunk: claim it, write its scores and current scores, mark it done, and finish the run if it
    was the last. Returns the number of consumers scored, or None if the chunk was not ours to take (done,
    claimed by a live task, or its run is over). Raises LeaseLost if the claim lapsed while working."""
    if not _claim(chunk_id, task_id, timezone.now()):
        return None
    with transaction.atomic():
        _tune_chunk_transaction()
        chunk = ScoreChunk.objects.select_related("run__scorecard").get(pk=chunk_id)
        run = chunk.run
        ids = _chunk_ids(chunk)
        scored = _write_scores(chunk, run, task_id, timezone.now(), ids)
        _update_current_scores(chunk, run, ids)
        now = timezone.now()
        done = ScoreChunk.objects.filter(
            pk=chunk.pk, status=ScoreChunk.Status.RUNNING, celery_task_id=task_id
        ).update(
            status=ScoreChunk.Status.DONE,
            consumers_scored=scored,
            finished_at=now,
            lease_expires_at=now,
            error="",
        )
        if not done:
            raise LeaseLost(f"chunk {chunk.pk} was taken over while task {task_id} worked on it")
        if chunk.shard is not None:  # a done chunk is never scored again: its list is dead weight
            ChunkConsumers.objects.filter(chunk_id=chunk.pk).delete()
        # The run row is the one lock chunks share, taken last and briefly: counters stay exact and exactly
        # one chunk sees the run complete, without serialising the chunks' real work.
        run = (
            ScoreRun.objects.select_for_update(of=("self",))
            .select_related("requested_by__organisation")
            .get(pk=run.pk)
        )
        run.chunks_done += 1
        run.consumers_scored += scored
        ScoreRun.objects.filter(pk=run.pk).update(
            chunks_done=run.chunks_done, consumers_scored=run.consumers_scored
        )
        if run.status == ScoreRun.Status.RUNNING and run.chunks_done == run.chunks_total:
            _finish(run, now)
    return scored


def _chunk_ids(chunk: ScoreChunk) -> list[int] | None:
    """The consumers a chunk planned on Citus names (one statement, routed to the list's shard by the
    chunk id); None for a chunk that is an id range."""
    if chunk.shard is None:
        return None
    ids = ChunkConsumers.objects.filter(chunk_id=chunk.pk).values_list("ids", flat=True).first()
    if ids is None:
        raise ScoringError(f"chunk {chunk.pk} of shard {chunk.shard} has lost its list of consumers")
    return list(ids)


def _tune_chunk_transaction() -> None:
    """PostgreSQL, for this transaction only: no JIT, since the chunk statement's (wildly over-) estimated
    cost triggers a compilation that takes longer than running it; room to sort the reasons in memory; and
    an asynchronous commit. That last one is safe because a chunk's scores and its "done" mark commit
    together: a crash that loses the commit loses both, and the lease brings the chunk back. A commit that
    carries an audit event is made synchronous again (_durable_commit)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true), "
                "set_config('synchronous_commit', 'off', true)"
            )


def _durable_commit() -> None:
    """Make the current transaction's commit wait for the disk again (it records an audit event)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('synchronous_commit', 'on', true)")


def _write_scores(
    chunk: ScoreChunk, run: ScoreRun, task_id: str, now: datetime, ids: list[int] | None = None
) -> int:
    """One INSERT ... SELECT: features, points, reasons and hash of the whole chunk (or, with `ids`, of the
    chunk's consumers named), computed in the database. ON CONFLICT DO NOTHING makes a repeated chunk a
    no-op."""
    incremental = run.kind == ScoreRun.Kind.INCREMENTAL
    ctes, select, params = scored_sql(
        connection, run.scorecard, incremental=incremental, by_ids=ids is not None
    )
    columns = ", ".join(
        [
            "run_id",
            "scorecard_id",
            "computed_at",
            "watermark",
            "celery_task_id",
            "consumer_id",
            "value",
            "features_hash",
            *(f"reason_{slot}_{name}" for slot in range(1, 5) for name in ("code", "en", "zh", "points")),
            "unclipped",
            "points_lost",
        ]
    )
    # The constant columns go first, then the scored SELECT's own columns.
    select = select.replace(
        "SELECT p.consumer_id,",
        "SELECT %(run_id)s, %(scorecard_id)s, %(computed_at)s, %(watermark_to)s, %(task_id)s, p.consumer_id,",
        1,
    )
    window = Window(cutoff=run.as_of, watermark=run.watermark_to)
    sql = (
        # INSERT first, WITH inside: Python's sqlite3 reports a row count only for statements that start
        # with INSERT. SQLite also needs a WHERE before an upsert's ON CONFLICT when rows come from a SELECT.
        f"INSERT INTO {CreditScore._meta.db_table} ({columns}) WITH {ctes} {select} "
        "WHERE 1 = 1 ON CONFLICT (run_id, consumer_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                **params,
                **window.params(connection),
                "lo": chunk.first_consumer_id,
                "hi": chunk.last_consumer_id,
                "ids": ids,
                "watermark_from": run.watermark_from,
                "run_id": run.pk,
                "scorecard_id": run.scorecard_id,
                "computed_at": connection.ops.adapt_datetimefield_value(now),
                "watermark_to": run.watermark_to,
                "task_id": task_id,
            },
        )
        return max(cursor.rowcount, 0)


def _update_current_scores(chunk: ScoreChunk, run: ScoreRun, ids: list[int] | None = None) -> None:
    """Copy this run's scores of the chunk to Consumer.current_score, in one UPDATE. A score computed from
    older data never overwrites one from newer data (an incremental run may finish before a full one), and
    an unchanged score is not rewritten (most stay the same between runs; a rewrite touches every index)."""
    consumer, score = Consumer._meta.db_table, CreditScore._meta.db_table
    by_ids = ids is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {consumer} SET current_score = s.value
                FROM {score} s
                WHERE s.run_id = %(run)s AND {in_chunk("s.consumer_id", by_ids=by_ids)}
                  AND {in_chunk(f"{consumer}.id", by_ids=by_ids)}
                  AND {consumer}.id = s.consumer_id
                  AND ({consumer}.current_score IS NULL OR {consumer}.current_score <> s.value)
                  AND NOT EXISTS (SELECT 1 FROM {score} n
                                  WHERE n.consumer_id = s.consumer_id AND n.watermark > s.watermark)""",  # noqa: S608
            {
                "run": run.pk,
                "lo": chunk.first_consumer_id,
                "hi": chunk.last_consumer_id,
                "ids": ids,
            },
        )


@transaction.atomic
def score_chunk_fail(*, chunk_id: int, task_id: str, error: str) -> bool:
    """Record a failed attempt. Returns True if the chunk may be retried; after MAX_ATTEMPTS it fails for good
    and so does its run (its watermark must not advance past consumers it never scored)."""
    now = timezone.now()
    chunk = ScoreChunk.objects.select_for_update().filter(pk=chunk_id, celery_task_id=task_id).first()
    if chunk is None or chunk.status != ScoreChunk.Status.RUNNING:
        return False  # no longer ours
    retry = chunk.attempts < MAX_ATTEMPTS
    chunk.status = ScoreChunk.Status.PENDING if retry else ScoreChunk.Status.FAILED
    chunk.error = error[:2000]
    # A retried chunk may be claimed again at once; its retry task carries it.
    chunk.lease_expires_at = now + timedelta(seconds=lease_seconds()) if retry else now
    chunk.finished_at = None if retry else now
    chunk.save(update_fields=["status", "error", "lease_expires_at", "finished_at"])
    if not retry:
        _chunk_failed_for_good(
            chunk, now, f"chunk {chunk.first_consumer_id}-{chunk.last_consumer_id}: {error}"[:2000]
        )
    return retry


def _chunk_failed_for_good(chunk: ScoreChunk, now: datetime, error: str) -> None:
    run = (
        ScoreRun.objects.select_for_update(of=("self",))
        .select_related("requested_by__organisation")
        .get(pk=chunk.run_id)
    )
    run.chunks_failed += 1
    ScoreRun.objects.filter(pk=run.pk).update(chunks_failed=run.chunks_failed)
    if run.status == ScoreRun.Status.RUNNING:
        _fail(run, now, error)


def score_chunks_requeue_expired(*, now: datetime | None = None) -> list[int]:
    """Re-enqueue the chunks of running runs whose lease lapsed: their task died with its worker (or its
    message was lost). A chunk out of attempts fails instead. Returns the ids re-enqueued."""
    now = now or timezone.now()
    requeued: list[int] = []
    with transaction.atomic():
        expired = list(
            ScoreChunk.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status__in=[ScoreChunk.Status.PENDING, ScoreChunk.Status.RUNNING],
                lease_expires_at__lt=now,
                run__status=ScoreRun.Status.RUNNING,
            )
            .order_by("id")
        )
        for chunk in expired:
            if chunk.attempts >= MAX_ATTEMPTS:
                chunk.status = ScoreChunk.Status.FAILED
                chunk.finished_at = now
                chunk.error = chunk.error or "lease expired on the last attempt"
                chunk.save(update_fields=["status", "finished_at", "error"])
                _chunk_failed_for_good(
                    chunk, now, f"chunk {chunk.first_consumer_id}-{chunk.last_consumer_id}: {chunk.error}"
                )
            else:
                requeued.append(chunk.pk)
        if requeued:
            # Pending again with a fresh lease: the claim accepts it, and the next requeue waits a lease.
            ScoreChunk.objects.filter(pk__in=requeued).update(
                status=ScoreChunk.Status.PENDING, lease_expires_at=now + timedelta(seconds=lease_seconds())
            )
            for chunk_id in requeued:
                _enqueue(chunk_id)
    return requeued


# --- Calibration ------------------------------------------------------------------------------------------
class _Rollback(Exception):
    """Raised to undo the calibration worlds once they have been measured."""


def scorecard_calibrate(
    *,
    version: str,
    name: str,
    calibration_seed: int,
    validation_seed: int,
    consumers: int,
    validation_consumers: int,
    end: date,
    pdo: float = 40.0,
    base_score: float = 660.0,
    base_odds: float = 32.0,
    keep_worlds: bool = False,
) -> dict[str, Any]:
    """Fit a scorecard on one generated world and measure it on another; return its JSON definition.

    Both worlds are loaded into the current database with portal.records.loader and their features computed by
    the production SQL as of one year before `end`. Unless `keep_worlds`, everything loaded is rolled back:
    run it on a scratch database in production, since the load locks the records tables while it lasts.
    """
    if calibration_seed == validation_seed:
        raise ScoringError("calibrate on one seed and validate on another: the same seed would leak")
    definition: dict[str, Any] = {}
    try:
        with transaction.atomic():
            definition = _calibrate(
                version=version,
                name=name,
                calibration_seed=calibration_seed,
                validation_seed=validation_seed,
                consumers=consumers,
                validation_consumers=validation_consumers,
                end=end,
                pdo=pdo,
                base_score=base_score,
                base_odds=base_odds,
            )
            if not keep_worlds:
                raise _Rollback
    except _Rollback:
        pass
    return definition


def _calibrate(
    *,
    version: str,
    name: str,
    calibration_seed: int,
    validation_seed: int,
    consumers: int,
    validation_consumers: int,
    end: date,
    pdo: float,
    base_score: float,
    base_odds: float,
) -> dict[str, Any]:
    train = quality.load_world(seed=calibration_seed, consumers=consumers, end=end)
    test = quality.load_world(seed=validation_seed, consumers=validation_consumers, end=end)
    rows = quality.world_features(train)
    ids = sorted(rows)
    model = calibration.fit_scorecard(
        [calibration.Candidate(f.code, f.risk_rises, f.missing_group) for f in FEATURES],
        [rows[i] for i in ids],
        [train.bads[i] for i in ids],
        pdo=pdo,
        base_score=base_score,
        base_odds=base_odds,
    )
    card = Scorecard(
        version=version, name=name, pdo=pdo, base_score=base_score, base_odds=base_odds, **portal_card(model)
    )
    validation = quality.measure(quality.world_scores(card, test), test.bads)
    in_sample = quality.measure(quality.world_scores(card, train), train.bads)
    card.metrics = {
        "auc": validation["auc"],
        "deciles": validation["deciles"],
        "deciles_fall_monotonically": validation["deciles_fall_monotonically"],
        "outcome": "a repayment due in the 12 months after the as-of date paid 90 or more days late",
        "population": "consumers who had joined before the as-of date",
        "calibration": {**train.describe(), "auc": in_sample["auc"]},
        "validation": test.describe(),
        "group_weights": _group_weights(card.features),
        "dropped": model.dropped,
        "development": model.report,
        "method": model.report["method"],
    }
    return {"version": version, **{name: getattr(card, name) for name in SCORECARD_FIELDS}}


def portal_card(model: calibration.FittedModel) -> dict[str, Any]:
    """base_points, features and missing_groups of a scorecard fitted on the portal's features."""
    return {
        "base_points": model.base_points,
        "features": [_feature_definition(f) for f in model.features],
        "missing_groups": {
            group: {
                "owner": owner,
                "points": next(
                    b["points"] for f in model.features if f.code == owner for b in f.bins if b["missing"]
                ),
                "reason_en": MISSING_REASONS[group][0],
                "reason_zh": MISSING_REASONS[group][1],
            }
            for group, owner in model.missing_owner.items()
        },
    }


def _feature_definition(fitted: calibration.FittedFeature) -> dict[str, Any]:
    spec = FEATURES_BY_CODE[fitted.code]
    return {
        "code": spec.code,
        "group": spec.group,
        "label_en": spec.label_en,
        "label_zh": spec.label_zh,
        "reason_en": spec.reason_en,
        "reason_zh": spec.reason_zh,
        "risk_rises": spec.risk_rises,
        "missing_group": spec.missing_group,
        "iv": fitted.iv,
        "bins": fitted.bins,
    }


def _group_weights(features: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each group's share of the scorecard's point spread, next to the FICO weighting it follows."""
    spread = {group: 0 for group in GROUPS}
    for feature in features:
        points = [b["points"] for b in feature["bins"] if b["count"] or not b["missing"]]
        spread[feature["group"]] += max(points) - min(points)
    total = sum(spread.values()) or 1
    return {
        group: {"fitted": round(spread[group] / total, 3), "target": GROUPS[group][2]} for group in GROUPS
    }
