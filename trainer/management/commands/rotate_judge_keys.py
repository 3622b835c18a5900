"""Re-encrypt every AI judge's stored API key with the current PREFLOOP_ENCRYPTION_KEY.

After changing the key, keep the old one in PREFLOOP_ENCRYPTION_KEY_FALLBACKS (or the old
secret key in SECRET_KEY_FALLBACKS when no encryption key was set), run this, then drop it.
"""

from django.core.management.base import BaseCommand, CommandError

from trainer.judging import keys
from trainer.models import Judge


class Command(BaseCommand):
    help = "Re-encrypt the AI judges' stored API keys with the current encryption key."

    def handle(self, *args, **options):
        rotated, unreadable = 0, []
        judges = Judge.objects.exclude(api_key_encrypted="").select_related("project")
        for judge in judges.order_by("id"):
            try:
                token = keys.rotate(judge.api_key_encrypted)
            except keys.KeyUnreadable:
                unreadable.append(f"{judge.name} (project {judge.project.name})")
                continue
            Judge.objects.filter(id=judge.id).update(api_key_encrypted=token)
            rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} stored API key(s).")
        if unreadable:
            raise CommandError(
                "No key reads the stored API key of: " + ", ".join(unreadable) + ". Enter "
                "those keys again on the judges' pages, or add the key they were stored under "
                "to PREFLOOP_ENCRYPTION_KEY_FALLBACKS."
            )
