"""Signals other apps may listen to. The labeling app knows nothing of who listens
(design.md: the loop watches the labels, the labels know nothing of training)."""

from django.dispatch import Signal

# Sent after the annotation's transaction committed; kwargs: annotation_id, project_id.
annotation_created = Signal()
