class JobError(Exception):
    """A request about a job that cannot be carried out; the message is for the user."""
