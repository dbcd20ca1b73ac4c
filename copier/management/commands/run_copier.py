from django.core.management.base import BaseCommand

from copier.daemon import run


class Command(BaseCommand):
    help = "Run the copier daemon: consume master events and copy them to followers."
    # The daemon serves no URLs; skipping the checks makes a restart faster.
    requires_system_checks: list[str] = []

    def handle(self, *args: object, **options: object) -> None:
        run()
