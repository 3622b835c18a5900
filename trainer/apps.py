from django.apps import AppConfig


class TrainerConfig(AppConfig):
    name = "trainer"
    verbose_name = "Training"

    def ready(self) -> None:
        from annotator.signals import annotation_created
        from trainer.receivers import on_annotation_created

        annotation_created.connect(on_annotation_created, dispatch_uid="trainer-loop")
