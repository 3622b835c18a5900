"""Errors raised by annotator services; views and the API turn them into responses."""


class ServiceError(Exception):
    """Base class. `message` is shown to the user as it is."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict:
        data = {"detail": self.message}
        if self.field:
            data["field"] = self.field
        return data


class InvalidAnswer(ServiceError):
    """The submitted answer does not fit the task (names the bad field)."""


class AlreadyAnswered(ServiceError):
    status_code = 409

    def __init__(self, message: str, *, annotation_id: int):
        super().__init__(message)
        self.annotation_id = annotation_id

    def as_dict(self) -> dict:
        return {"detail": self.message, "annotation_id": self.annotation_id}


class LeaseLost(ServiceError):
    """The lease expired and others filled the task's overlap meanwhile."""

    status_code = 409


class NotAssigned(ServiceError):
    status_code = 409


class ImportFailed(ServiceError):
    """An import had bad lines; nothing was written. `errors` lists them all."""

    def __init__(self, errors: list[dict]):
        super().__init__(f"{len(errors)} bad line(s); nothing was imported.")
        self.errors = errors

    def as_dict(self) -> dict:
        return {"detail": self.message, "errors": self.errors}


class NotYours(ServiceError):
    """Only the labeler who gave an answer may change it."""

    status_code = 403


class AnswerGone(ServiceError):
    """The answer no longer exists (it was undone)."""

    status_code = 404


class UndoExpired(ServiceError):
    """The short undo window after a submit has passed; editing is still possible."""

    status_code = 409


class LabelerPaused(ServiceError):
    """The labeler is paused for the project (under its gold floor); the message says why."""

    status_code = 403
