"""Scorecards (versioned, one active), score runs split into leased chunks, and the scores they write.

A score is never updated: every run adds one row per consumer it scored (unique per run and consumer), so
history is kept for trend charts and a re-run chunk cannot duplicate anything.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

MIN_SCORE = 300
MAX_SCORE = 850
REASON_SLOTS = 4
REVIEW_DAYS = 365


class Scorecard(models.Model):
    """A binned points scorecard: score = base_points + sum of each feature's bin points, clipped to 300-850.

    base_points folds in the PDO scaling (offset + factor * intercept): the sum is offset + factor * ln(odds).
    Rows are immutable once written: scores point at the version that produced them.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        VALIDATED = "validated", _("Validated")
        APPROVED = "approved", _("Approved")
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")

    class Source(models.TextChoices):
        PORTAL = "portal", _("Portal outcomes")
        EXTERNAL = "external", _("External extract")

    version = models.CharField(_("version"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=False)
    pdo = models.FloatField(_("points to double the odds"))
    base_score = models.FloatField(_("base score"))
    base_odds = models.FloatField(_("good:bad odds at the base score"))
    base_points = models.IntegerField(_("base points"))
    # [{code, group, label_en, label_zh, reason_en, reason_zh, risk_rises, missing_group, coefficient,
    #   bins: [{lower, upper, missing, points, woe, count, bad_rate}]}], in reason-code priority order.
    features = models.JSONField(_("features, bins and points"))
    # {group: {owner, points, reason_en, reason_zh}}: why a value can be missing, and who carries its points.
    missing_groups = models.JSONField(_("missing-value groups"), default=dict)
    # {auc, deciles, calibration: {seed, consumers, ...}, validation: {...}, group_weights, dropped, ...}
    metrics = models.JSONField(_("metrics"), default=dict)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    # Governance (SPEC §5): draft -> validated -> approved by a second person -> active -> retired.
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    source = models.CharField(_("data source"), max_length=10, choices=Source.choices, default=Source.PORTAL)
    # Portal: {as_of, outcome, population}; external: {file, sha256, target, bad, rows}.
    source_detail = models.JSONField(_("data source detail"), default=dict, blank=True)
    # The validation report of fit_scorecard: cv_auc, gini, ks, brier, calibration, iv, baseline_cv_auc, ...
    report = models.JSONField(_("validation report"), default=dict, blank=True)
    # The development sample's distributions, PSI's reference: {"score": {band: share}, "features": {...}}.
    development = models.JSONField(_("development sample"), default=dict, blank=True)
    fitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    fitted_at = models.DateTimeField(_("fitted at"), null=True, blank=True)
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    validated_at = models.DateTimeField(_("validated at"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)

    class Meta:
        verbose_name = _("scorecard")
        verbose_name_plural = _("scorecards")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="scorecard_one_active"
            ),
            models.CheckConstraint(
                condition=Q(pdo__gt=0) & Q(base_odds__gt=0), name="scorecard_scaling_positive"
            ),
            # A model fitted on an external extract is a validation artefact: its features are not the
            # portal's, so it can never score the portal's consumers.
            models.CheckConstraint(
                condition=~(Q(source="external") & (Q(is_active=True) | Q(status="active"))),
                name="scorecard_external_never_active",
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(status="active"), name="scorecard_active_has_status"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.version})"

    @property
    def review_due(self) -> date | None:
        """A model in use is reviewed yearly: a year after activation."""
        if self.activated_at is None:
            return None
        return (self.activated_at + timedelta(days=REVIEW_DAYS)).date()


class ScoreRun(models.Model):
    class Kind(models.TextChoices):
        FULL = "full", _("Full refresh")
        INCREMENTAL = "incremental", _("Incremental refresh")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    scorecard = models.ForeignKey(Scorecard, on_delete=models.PROTECT, related_name="runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="score_runs",
        help_text=_("Empty for runs started by the schedule."),
    )
    celery_task_id = models.CharField(_("Celery task id"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Features see transactions before as_of with an id in (watermark_from, watermark_to]: ids, not times,
    # so a row that arrives late with an old timestamp is still picked up by the next incremental run.
    as_of = models.DateTimeField(_("as of"))
    watermark_from = models.BigIntegerField(_("watermark from"), default=0)
    watermark_to = models.BigIntegerField(_("watermark to"), default=0)
    consumers_planned = models.PositiveIntegerField(_("consumers planned"), default=0)
    consumers_scored = models.PositiveIntegerField(_("consumers scored"), default=0)
    chunks_total = models.PositiveIntegerField(_("chunks"), default=0)
    chunks_done = models.PositiveIntegerField(_("chunks done"), default=0)
    chunks_failed = models.PositiveIntegerField(_("chunks failed"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    # Written when the run finishes: its score distribution and PSI against the scorecard's development
    # sample, in total and per characteristic ({"score": {...}, "features": {...}, "psi": ..., "level": ...}).
    monitoring = models.JSONField(_("monitoring"), default=dict, blank=True)

    class Meta:
        verbose_name = _("score run")
        verbose_name_plural = _("score runs")
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one running run of each kind, so never two full refreshes at once. Enforced by the
            # database; score_run_start also serialises starts with an advisory lock on PostgreSQL.
            models.UniqueConstraint(
                fields=["kind"], condition=Q(status="running"), name="scorerun_one_running_per_kind"
            ),
            models.CheckConstraint(
                condition=Q(watermark_to__gte=models.F("watermark_from")), name="scorerun_watermarks_ordered"
            ),
        ]
        indexes = [models.Index(fields=["status", "watermark_to"], name="scorerun_status_watermark")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def progress(self) -> float:
        return self.chunks_done / self.chunks_total if self.chunks_total else 1.0


class ScoreChunk(models.Model):
    """A range of consumer ids of a run, processed by one task holding a lease on it.

    On Citus (PORTAL_CITUS) a chunk is also one shard's: `shard` is the pg_dist_shard id of records_consumer
    whose consumers it holds, and its ChunkConsumers row names them (all within first..last), so that every
    statement of the chunk prunes to that shard (deploy/SCALING.md §3.4). On plain PostgreSQL and SQLite
    `shard` stays empty and the chunk is its id range.

    The lease lives here, not in the broker: a worker killed mid-chunk loses its message (early ack) or gets
    it back only after Redis's visibility timeout, so a periodic task re-enqueues chunks whose lease ran out.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    run = models.ForeignKey(ScoreRun, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    first_consumer_id = models.BigIntegerField(_("first consumer id"))
    last_consumer_id = models.BigIntegerField(_("last consumer id"))
    consumers_planned = models.PositiveIntegerField(_("consumers planned"))
    shard = models.BigIntegerField(_("Citus shard"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    # While pending: when the queued message should have been picked up; while running: when the claim lapses.
    lease_expires_at = models.DateTimeField(_("lease expires at"))
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    celery_task_id = models.CharField(_("Celery task id"), max_length=64, blank=True)
    consumers_scored = models.PositiveIntegerField(_("consumers scored"), default=0)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("score chunk")
        verbose_name_plural = _("score chunks")
        constraints = [
            models.UniqueConstraint(fields=["run", "first_consumer_id"], name="scorechunk_unique_range"),
            models.CheckConstraint(
                condition=Q(last_consumer_id__gte=models.F("first_consumer_id")),
                name="scorechunk_range_ordered",
            ),
        ]
        indexes = [
            # The requeue task's work list: unfinished chunks by lease expiry.
            models.Index(
                fields=["lease_expires_at"],
                name="scorechunk_open_lease",
                condition=Q(status__in=["pending", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} consumers {self.first_consumer_id}-{self.last_consumer_id}"


class ChunkConsumers(models.Model):
    """The consumers of a chunk planned on Citus, by id, in order: the constants its statements name.

    A table of its own, not a column of ScoreChunk: chunks are a reference table (a copy on every worker,
    read by each request's lease updates), while these lists add up to one id per consumer per run, so
    they are distributed by chunk (each list on one shard, read and deleted by its chunk id) and deleted
    when their chunk is done."""

    chunk = models.OneToOneField(
        ScoreChunk, on_delete=models.CASCADE, primary_key=True, related_name="consumers"
    )
    ids = models.JSONField(_("consumer ids"))

    class Meta:
        verbose_name = _("chunk consumers")
        verbose_name_plural = _("chunk consumers")

    def __str__(self) -> str:
        return f"chunk {self.chunk_id}: {len(self.ids)} consumers"


class CreditScore(models.Model):
    """One consumer's score from one run, with its provenance and up to four reason codes."""

    id = models.BigAutoField(primary_key=True)
    # Indexed through the (run, consumer) constraint and the (consumer, computed_at) index below.
    run = models.ForeignKey(ScoreRun, on_delete=models.PROTECT, related_name="scores", db_index=False)
    consumer = models.ForeignKey(
        "records.Consumer", on_delete=models.PROTECT, related_name="credit_scores", db_index=False
    )
    scorecard = models.ForeignKey(Scorecard, on_delete=models.PROTECT, related_name="+", db_index=False)
    value = models.SmallIntegerField(_("score"))
    computed_at = models.DateTimeField(_("computed at"))
    watermark = models.BigIntegerField(_("data watermark (highest transaction id seen)"))
    features_hash = models.CharField(_("feature snapshot SHA-256"), max_length=64)
    celery_task_id = models.CharField(_("Celery task id"), max_length=64, blank=True)
    reason_1_code = models.CharField(max_length=40, blank=True)
    reason_1_en = models.CharField(max_length=200, blank=True)
    reason_1_zh = models.CharField(max_length=200, blank=True)
    reason_1_points = models.SmallIntegerField(null=True, blank=True)
    reason_2_code = models.CharField(max_length=40, blank=True)
    reason_2_en = models.CharField(max_length=200, blank=True)
    reason_2_zh = models.CharField(max_length=200, blank=True)
    reason_2_points = models.SmallIntegerField(null=True, blank=True)
    reason_3_code = models.CharField(max_length=40, blank=True)
    reason_3_en = models.CharField(max_length=200, blank=True)
    reason_3_zh = models.CharField(max_length=200, blank=True)
    reason_3_points = models.SmallIntegerField(null=True, blank=True)
    reason_4_code = models.CharField(max_length=40, blank=True)
    reason_4_en = models.CharField(max_length=200, blank=True)
    reason_4_zh = models.CharField(max_length=200, blank=True)
    reason_4_points = models.SmallIntegerField(null=True, blank=True)
    # Points lost per characteristic against its best bin ({code: points}, every feature): they add up to
    # the scorecard's maximum minus the unclipped score; the four largest are the reason codes.
    points_lost = models.JSONField(_("points lost per characteristic"), null=True, blank=True)
    unclipped = models.IntegerField(_("score before clipping"), null=True, blank=True)

    class Meta:
        verbose_name = _("credit score")
        verbose_name_plural = _("credit scores")
        constraints = [
            models.UniqueConstraint(fields=["run", "consumer"], name="creditscore_once_per_run"),
            models.CheckConstraint(
                condition=Q(value__gte=MIN_SCORE) & Q(value__lte=MAX_SCORE), name="creditscore_value_in_range"
            ),
        ]
        indexes = [models.Index(fields=["consumer", "computed_at"], name="creditscore_consumer_time")]

    def __str__(self) -> str:
        return f"{self.value} (run {self.run_id})"

    @property
    def reasons(self) -> list[dict]:
        """The reason codes in order: the features that cost this consumer the most points."""
        found = []
        for slot in range(1, REASON_SLOTS + 1):
            code = getattr(self, f"reason_{slot}_code")
            if code:
                found.append(
                    {
                        "code": code,
                        "text_en": getattr(self, f"reason_{slot}_en"),
                        "text_zh": getattr(self, f"reason_{slot}_zh"),
                        "points_lost": getattr(self, f"reason_{slot}_points"),
                    }
                )
        return found
