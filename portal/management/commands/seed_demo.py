"""manage.py seed_demo: the small, deterministic demo world of SPEC §8. Running it twice changes nothing."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal.accounts.models import Organisation, User
from portal.records import loader, synthetic

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

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates accounts with a published password: never in production")
        with transaction.atomic():
            organisations = self.seed_organisations()
            created = self.seed_users(organisations)
        result = loader.load(seed=DEMO_SEED, consumers=DEMO_CONSUMERS, end=synthetic.default_end_date())
        self.stdout.write(
            f"Demo world ready: {len(organisations)} organisations, {len(USERS)} users ({created} new), "
            f"{result.consumers} consumers and {result.transactions} transactions loaded now "
            f"({result.skipped_chunks} chunk(s) already present)."
        )
        self.stdout.write(
            f"Demo users: {', '.join(u[0] for u in USERS)}; password: {settings.DEMO_PASSWORD} "
            "(from DEMO_PASSWORD)."
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
            )
            user.set_password(settings.DEMO_PASSWORD)
            user.full_clean()
            user.save()
            created += 1
        return created
