import json

from django.core.management.base import BaseCommand, CommandError

from config.scheduled import integrity_problems


class Command(BaseCommand):
    help = 'Reconcile TokenLedger with itself; prints {"ok", "problems"} and exits 1 when not ok.'

    def handle(self, *args: object, **options: object) -> None:
        problems = integrity_problems()
        self.stdout.write(json.dumps({"ok": not problems, "problems": [p.as_dict() for p in problems]}))
        if problems:
            raise CommandError(f"{len(problems)} integrity problem(s) found")
