"""manage.py compile_catalogues: compile the .po message catalogues to .mo with polib (no GNU gettext)."""

from django.core.management.base import BaseCommand

from portal.web import catalogues


class Command(BaseCommand):
    help = "Compile every .po catalogue under LOCALE_PATHS to .mo with polib (no GNU gettext needed)."

    def handle(self, *args, **options) -> None:
        for po_path in catalogues.sources():
            mo_path = catalogues.compile_catalogue(po_path)
            self.stdout.write(f"compiled {mo_path}")
