"""manage.py seed_demo: the small, deterministic demo world of SPEC §8. Running it twice changes nothing."""

import json
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from portal.access import services as access
from portal.access.models import AccessGrant, Permission
from portal.accounts import services as accounts
from portal.accounts.checks import DEMO_DEFAULT_PASSWORD
from portal.accounts.models import Organisation, User
from portal.records import loader, synthetic
from portal.records.management.commands.load_synthetic import positive_int
from portal.records.models import Segment
from scoring import services as scoring
from scoring.models import Scorecard, ScoreRun

SHIPPED_SCORECARD = Path(scoring.__file__).resolve().parent / "data" / "scorecard-2026.1.json"
DEMO_SEED = 8
DEMO_CONSUMERS = 3_000

ORGANISATIONS = [
    # (short name, kind, name, Chinese name)
    (
        "pbc-crc",
        Organisation.Kind.REGULATOR,
        "Credit Reference Center, People's Bank of China",
        "中国人民银行征信中心",
    ),
    (
        "nfra",
        Organisation.Kind.REGULATOR,
        "National Financial Regulatory Administration",
        "国家金融监督管理总局",
    ),
    (
        "state-capital-a",
        Organisation.Kind.SHAREHOLDER,
        "State Capital Investment Holdings",
        "国有资本投资控股公司",
    ),
    (
        "state-capital-b",
        Organisation.Kind.SHAREHOLDER,
        "Provincial State Assets Operation Co.",
        "省国有资产运营公司",
    ),
    ("operator", Organisation.Kind.OPERATOR, "Credit Scoring Joint Venture", "信用评分合资公司"),
]

GRANT_DAYS = 180
GRANTS = [
    # (case reference, requester, grantee organisation, segment, permissions, approve?, purpose, legal basis)
    (
        "PBC-CRC-2026-0412",
        "regulator",
        "pbc-crc",
        "chengdu-chongqing-consumer-finance",
        [Permission.VIEW_RECORDS, Permission.VIEW_SCORES, Permission.EXPORT_RECORDS],
        True,
        "Supervisory review of consumer-finance lending practices in Chengdu and Chongqing.",
        "Regulations on the Administration of Credit Investigation Industry, art. 38",
    ),
    (
        "NFRA-2026-0077",
        "regulator2",
        "nfra",
        "yangtze-river-delta",
        [Permission.VIEW_MASKED_RECORDS],
        False,
        "Thematic review of delinquency handling in the Yangtze River Delta.",
        "Banking Supervision Law, art. 33",
    ),
    (
        "SH-A-2026-Q3-DELTA",
        "compliance",
        "state-capital-a",
        "yangtze-river-delta",
        [Permission.VIEW_AGGREGATES],
        True,
        "Shareholder portfolio review of the Yangtze River Delta segment.",
        "Joint-venture shareholder agreement, cl. 9.2 (information rights)",
    ),
    (
        "SH-A-2026-Q3-REVOLVING",
        "compliance",
        "state-capital-a",
        "revolving-credit",
        [Permission.VIEW_AGGREGATES],
        True,
        "Shareholder portfolio review of revolving credit lines.",
        "Joint-venture shareholder agreement, cl. 9.2 (information rights)",
    ),
]
APPROVER = "compliance2"

USERS = [
    # (username, role, organisation short name, first name, last name)
    ("regulator", User.Role.REGULATOR, "pbc-crc", "Wei", "Zhang"),
    ("regulator2", User.Role.REGULATOR, "nfra", "Min", "Li"),
    ("shareholder", User.Role.SHAREHOLDER, "state-capital-a", "Jun", "Wang"),
    ("compliance", User.Role.COMPLIANCE, "operator", "Fang", "Chen"),
    ("compliance2", User.Role.COMPLIANCE, "operator", "Lei", "Zhao"),
    ("auditor", User.Role.AUDITOR, "operator", "Hua", "Liu"),
    ("admin", User.Role.ADMIN, "operator", "Portal", "Administrator"),
]


class Command(BaseCommand):
    help = "Create the demo world: organisations, the named users, segments, consumers and transactions."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--consumers",
            type=positive_int,
            default=DEMO_CONSUMERS,
            help=f"consumers in the demo world (default {DEMO_CONSUMERS}; tests use fewer)",
        )

    def handle(self, *args, consumers: int = DEMO_CONSUMERS, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates accounts with a published password: never in production")
        with transaction.atomic():
            organisations = self.seed_organisations()
            created = self.seed_users(organisations)
            self.seed_memberships()
        result = loader.load(seed=DEMO_SEED, consumers=consumers, end=synthetic.default_end_date())
        granted = self.seed_grants()
        model = self.seed_scorecard()
        scores = self.seed_scores()
        self.stdout.write(
            f"Demo world ready: {len(organisations)} organisations, {len(USERS)} users ({created} new), "
            f"{result.consumers} consumers and {result.transactions} transactions loaded now "
            f"({result.skipped_chunks} chunk(s) already present); "
            f"{granted} grant(s) made through the workflow; {model}; {scores}."
        )
        source = (
            "the default; set DEMO_PASSWORD to choose another"
            if settings.DEMO_PASSWORD == DEMO_DEFAULT_PASSWORD
            else "from DEMO_PASSWORD"
        )
        self.stdout.write(
            f"Demo users: {', '.join(u[0] for u in USERS)}; password: {settings.DEMO_PASSWORD} ({source})."
        )

    def seed_organisations(self) -> dict[str, Organisation]:
        organisations = {}
        for short_name, kind, name, name_zh in ORGANISATIONS:
            organisations[short_name], _ = Organisation.objects.get_or_create(
                short_name=short_name, defaults={"kind": kind, "name": name, "name_zh": name_zh}
            )
        return organisations

    def seed_users(self, organisations: dict[str, Organisation]) -> int:
        created = 0
        # The accounts of the demo world carry a published password: marked so that MFA exemptions (only in a
        # demo run) and production's refusal to start can find them without hashing anything.
        User.objects.filter(username__in=[u[0] for u in USERS], is_demo=False).update(is_demo=True)
        for username, role, org, first_name, last_name in USERS:
            if User.objects.filter(username=username).exists():
                continue
            is_admin = role == User.Role.ADMIN
            user = User(
                username=username,
                role=role,
                organisation=organisations[org],
                first_name=first_name,
                last_name=last_name,
                email=f"{username}@{org}.example",
                is_staff=is_admin,
                is_superuser=is_admin,
                is_demo=True,
            )
            user.set_password(settings.DEMO_PASSWORD)
            user.full_clean()
            user.save()
            created += 1
        return created

    def seed_memberships(self) -> None:
        """Each demo account's membership through the real workflow: requested by `compliance`, approved by
        `compliance2`; the two officers themselves by the bootstrap (each approves the other). Accounts whose
        membership is already in force are left alone."""
        first, second = User.objects.get(username="compliance"), User.objects.get(username=APPROVER)
        if not first.membership_in_force and not second.membership_in_force:
            accounts.memberships_bootstrap(first=first, second=second, reason="Demo world.")
            first.membership_changed()
            second.membership_changed()
        if not (first.membership_in_force and second.membership_in_force):
            raise CommandError(
                "the demo's compliance officers are not both in force: fix their memberships first"
            )
        for username, role, org, _first_name, _last_name in USERS:
            user = User.objects.get(username=username)
            if user.membership_in_force or user.pk in (first.pk, second.pk):
                continue
            membership = accounts.membership_request(
                requester=first,
                user=user,
                role=role,
                organisation=Organisation.objects.get(short_name=org),
                reason="Demo world.",
            )
            accounts.membership_approve(membership=membership, approver=second, note="Demo world.")

    def seed_grants(self) -> int:
        """The demo grants of SPEC §8, requested and (where due) approved through the real workflow. A grant
        that has run out is requested again; one that is pending or live is left alone."""
        made = 0
        now = timezone.now()
        approver = User.objects.get(username=APPROVER)
        for case, requester, grantee, segment, permissions, approve, purpose, basis in GRANTS:
            live = AccessGrant.objects.filter(case_reference=case, valid_until__gt=now).filter(
                status__in=[AccessGrant.Status.REQUESTED, AccessGrant.Status.APPROVED]
            )
            if live.exists():
                continue
            with transaction.atomic():
                grant = access.grant_request(
                    requester=User.objects.get(username=requester),
                    grantee_organisation=Organisation.objects.get(short_name=grantee),
                    segment=Segment.objects.get(slug=segment),
                    permissions=permissions,
                    purpose=purpose,
                    legal_basis=basis,
                    case_reference=case,
                    valid_until=now + timedelta(days=GRANT_DAYS),
                )
                if approve:
                    access.grant_approve(grant=grant, approver=approver, note="Demo world.")
            made += 1
        return made

    def seed_scorecard(self) -> str:
        """The shipped scorecard through its real lifecycle, each step an audit event: validated by
        `compliance`, approved and activated by `compliance2` (a second person)."""
        if Scorecard.objects.filter(is_active=True).exists():
            return "a scorecard is active already"
        card = scoring.scorecard_import(definition=json.loads(SHIPPED_SCORECARD.read_text(encoding="utf-8")))
        validator, approver = User.objects.get(username="compliance"), User.objects.get(username=APPROVER)
        if card.status == Scorecard.Status.DRAFT:
            card = scoring.model_validate(scorecard=card, actor=validator)
        if card.status == Scorecard.Status.VALIDATED:
            card = scoring.model_approve(scorecard=card, actor=approver)
        if card.status == Scorecard.Status.APPROVED:
            card = scoring.model_activate(scorecard=card, actor=approver)
        return f"scorecard {card.version} {card.status} (validated by compliance, approved by {APPROVER})"

    def seed_scores(self) -> str:
        """Current scores through a real full refresh with the active scorecard (SPEC §8). In-process it runs
        before this command returns; with a broker the workers score while the portal starts."""
        if ScoreRun.objects.filter(kind=ScoreRun.Kind.FULL).exists():
            return "scores already refreshed"
        try:
            run = scoring.score_run_start(
                kind=ScoreRun.Kind.FULL, requested_by=User.objects.get(username="compliance")
            )
        except scoring.UnknownScorecard:
            return "no active scorecard, so no scores"
        run.refresh_from_db()
        return f"score refresh #{run.pk} {run.status} ({run.consumers_scored} consumers scored)"
