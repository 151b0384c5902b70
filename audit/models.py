"""The audit trail: one event per audited request or action, with the consumers it touched.

Rows are append-only (database triggers refuse UPDATE, DELETE and TRUNCATE, except the one-time filling of
the chain columns by the sealer). On PostgreSQL events and their subjects are partitioned by month of the
event's time (audit/partitions.py). Subjects are plain public ids and grants plain ids, so the trail outlives
any row it mentions and this app depends on nothing of the portal's but the user model.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditEvent(models.Model):
    class Outcome(models.TextChoices):
        ALLOWED = "allowed", _("Allowed")
        DENIED = "denied", _("Denied")
        ERROR = "error", _("Error")

    id = models.BigAutoField(primary_key=True)  # the sequence number
    occurred_at = models.DateTimeField(_("time"), default=timezone.now)
    # No database constraint: deleting a user must never touch (or be blocked by) the append-only trail.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_username = models.CharField(_("username"), max_length=150, blank=True)
    actor_organisation = models.CharField(_("organisation"), max_length=200, blank=True)
    actor_role = models.CharField(_("role"), max_length=20, blank=True)
    action = models.CharField(_("action"), max_length=100)
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices)
    method = models.CharField(_("HTTP method"), max_length=10, blank=True)
    path = models.CharField(_("path"), max_length=500, blank=True)
    query = models.JSONField(_("query"), default=dict, blank=True)  # sanitised: never the search term
    status = models.PositiveSmallIntegerField(_("status"), null=True, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    grant_id = models.BigIntegerField(_("grant"), null=True, blank=True)
    purpose = models.TextField(_("purpose"), blank=True)
    resource_kind = models.CharField(_("resource kind"), max_length=30, blank=True)
    requested_id = models.CharField(_("requested id"), max_length=100, blank=True)
    row_count = models.PositiveIntegerField(_("rows"), default=0)
    search_hash = models.CharField(_("search term (HMAC)"), max_length=64, blank=True)
    export_sha256 = models.CharField(_("export SHA-256"), max_length=64, blank=True)
    # Filled once by the sealer: a gap-free position, the previous event's hash and this event's hash.
    chain_position = models.BigIntegerField(_("chain position"), null=True, blank=True, unique=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64, blank=True)
    hash = models.CharField(_("hash"), max_length=64, blank=True)
    sealed_at = models.DateTimeField(_("sealed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["occurred_at", "id"], name="audit_time"),
            models.Index(fields=["actor_username", "occurred_at"], name="audit_actor_time"),
            models.Index(fields=["actor_organisation", "occurred_at"], name="audit_org_time"),
            models.Index(fields=["action", "occurred_at"], name="audit_action_time"),
            models.Index(fields=["outcome", "occurred_at"], name="audit_outcome_time"),
            # The grant page lists the accesses made under a grant, newest first.
            models.Index(fields=["grant_id", "occurred_at"], name="audit_grant_time"),
            # The sealer's work list: unsealed events in id order.
            models.Index(
                fields=["id"], name="audit_unsealed", condition=models.Q(chain_position__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.outcome}"


class AuditSubject(models.Model):
    """One consumer whose data an event returned (or asked for): the per-consumer access log reads these."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint: on PostgreSQL the events table is partitioned by month, and a foreign key to
    # it would have to name (id, occurred_at) and would block detaching a month. The recorder writes an event
    # and its subjects in one transaction, the triggers refuse any change afterwards, and the chain's hash
    # covers each event's subjects, so audit_verify finds a subject added, altered or removed.
    event = models.ForeignKey(
        AuditEvent,
        on_delete=models.DO_NOTHING,
        related_name="subjects",
        db_index=False,
        db_constraint=False,
    )
    # The event's own time, copied by the recorder: on PostgreSQL subjects are partitioned by the same months
    # as their events (a month is detached with its subjects), and a join on (event, occurred_at) reads only
    # the event partition of that month. In SQL the primary key is (id, occurred_at) and the unique
    # constraint also names occurred_at, as a partitioned table requires.
    occurred_at = models.DateTimeField(_("event time"))
    public_id = models.CharField(_("consumer public id"), max_length=32)
    # The grant this consumer was shown under (a list may span several grants, each consumer under its own);
    # a plain id, as the event's. Null for subjects recorded before subjects carried their grant, and for
    # events that relied on no grant (a denial, an auditor's read of the trail).
    grant_id = models.BigIntegerField(_("grant"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit subject")
        verbose_name_plural = _("audit subjects")
        constraints = [models.UniqueConstraint(fields=["event", "public_id"], name="audit_subject_unique")]
        indexes = [
            # The per-consumer access log, newest first: (occurred_at, event) is also the key of the event.
            models.Index(fields=["public_id", "occurred_at", "event"], name="audit_subject_consumer_time")
        ]

    def __str__(self) -> str:
        return self.public_id


class AuditCheckpoint(models.Model):
    """A signed statement "the chain had this head hash at this position", published for regulators to keep.

    Append-only like the events: a kept copy is only worth something if the operator cannot quietly rewrite
    the history it vouches for, and the row here is the operator's own record of having signed it.
    """

    id = models.BigAutoField(primary_key=True)
    # One checkpoint per head: the publisher signs only when the head has moved.
    chain_position = models.BigIntegerField(_("chain position"), unique=True)
    head_hash = models.CharField(_("head hash"), max_length=64)
    created_at = models.DateTimeField(_("created at"))
    algorithm = models.CharField(_("algorithm"), max_length=20)
    public_key = models.CharField(_("public key (base64)"), max_length=64)
    signature = models.CharField(_("signature (base64)"), max_length=128)
    # The Merkle tree the checkpoint vouches for (audit/notes.py): its size equals chain_position, its root
    # is standard base64, and the note is the C2SP signed note (tlog-checkpoint) as served. Empty on
    # checkpoints signed before the tree existed.
    tree_size = models.BigIntegerField(_("tree size"), null=True, blank=True)
    tree_root = models.CharField(_("tree root (base64)"), max_length=44, blank=True)
    note = models.TextField(_("signed note"), blank=True)

    class Meta:
        verbose_name = _("audit checkpoint")
        verbose_name_plural = _("audit checkpoints")

    def __str__(self) -> str:
        return f"checkpoint @{self.chain_position}"


class AuditMerkleNode(models.Model):
    """One hash of the Merkle tree over the sealed events (audit/tiles.py): the root of the complete subtree
    of leaves [index * 2**level, (index + 1) * 2**level). Level 0 holds the leaf hashes (leaf index = chain
    position - 1). Written by the sealer in the transaction that seals the leaves; append-only."""

    id = models.BigAutoField(primary_key=True)
    level = models.PositiveSmallIntegerField(_("level"))
    index = models.BigIntegerField(_("index"))
    hash = models.BinaryField(_("hash"), max_length=32)

    class Meta:
        verbose_name = _("audit Merkle tree node")
        verbose_name_plural = _("audit Merkle tree nodes")
        constraints = [models.UniqueConstraint(fields=["level", "index"], name="audit_merkle_node_unique")]

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class AuditCosignature(models.Model):
    """A witness's cosignature (c2sp.org/tlog-cosignature) of a checkpoint's note: the witness, run by a
    regulator, checked that the log only grew since the last checkpoint it cosigned. Append-only; verified
    under the witness's key before it is stored, and served with the note."""

    id = models.BigAutoField(primary_key=True)
    checkpoint = models.ForeignKey(
        AuditCheckpoint, on_delete=models.PROTECT, related_name="cosignatures", verbose_name=_("checkpoint")
    )
    # The witness's verifier key (<name>+<key id>+<base64(0x04 || key)>): the name and the key it signs with.
    witness_key = models.CharField(_("witness key"), max_length=300)
    signature = models.TextField(_("cosignature line"))
    cosigned_at = models.DateTimeField(_("cosigned at"))  # the cosignature's own timestamp
    created_at = models.DateTimeField(_("stored at"), default=timezone.now)

    class Meta:
        verbose_name = _("audit checkpoint cosignature")
        verbose_name_plural = _("audit checkpoint cosignatures")
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "witness_key"], name="audit_cosignature_unique")
        ]

    def __str__(self) -> str:
        return f"{self.witness_key.split('+', 1)[0]} @{self.checkpoint_id}"
