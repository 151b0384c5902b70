"""manage.py serve: the development server; with no broker it also fires the periodic schedule in-process."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from portal.celery import EmbeddedBeat


class Command(BaseCommand):
    help = (
        "Serve the portal (runserver without autoreload) and, in the embedded default, run the beat schedule."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport: str, **options) -> None:
        if settings.PORTAL_EMBEDDED_BEAT:
            EmbeddedBeat().start()
            self.stdout.write("Periodic tasks run in this process (embedded beat).")
        call_command("runserver", addrport, use_reloader=False)
