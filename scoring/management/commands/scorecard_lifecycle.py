"""manage.py scorecard_lifecycle VERSION validate|approve|activate --by USERNAME: take a model version one
step through its lifecycle. The person who fitted it may take none of these steps; each one, and each
refusal, is an audit event."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring import services
from scoring.models import Scorecard


class Command(BaseCommand):
    help = "Validate, approve (a second person) or activate a model version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model_version", metavar="VERSION")
        parser.add_argument("step", choices=sorted(services.LIFECYCLE))
        parser.add_argument("--by", required=True, help="username of the compliance officer")

    def handle(self, *args, **options) -> None:
        user = get_user_model().objects.filter(username=options["by"]).first()
        if user is None:
            raise CommandError(f"--by: no user {options['by']!r}")
        card = Scorecard.objects.filter(version=options["model_version"]).first()
        if card is None:
            raise CommandError(f"VERSION: no model version {options['model_version']!r}")
        try:
            card = services.LIFECYCLE[options["step"]](scorecard=card, actor=user)
        except services.GovernanceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Model {card.version} is {card.status}")
