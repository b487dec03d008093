"""One exception type for every user-facing error, so the CLI can print it as one line."""


class GradInvError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it."""


class MissingAssetError(GradInvError, FileNotFoundError):
    """A dataset or weight file is missing; the message names the file and the command to fix it."""
