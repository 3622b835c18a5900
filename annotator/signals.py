"""Signals other apps may listen to. The labeling app knows nothing of who listens
(docs/architecture.md: the loop watches the labels, the labels know nothing of training)."""

from django.dispatch import Signal

# Sent inside the annotation's transaction (it rolls back with it); kwargs: annotation_id,
# project_id. A listener may only write rows here, in one cheap statement (it runs on every
# submit); anything that leaves the database it defers with transaction.on_commit, and it must
# never wait on anything outside the database.
annotation_created = Signal()
