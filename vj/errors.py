"""The base of every mistake a user can fix (a config key, a cue sheet line, a file, a mapping, a download):
`vj` says its message in one line and exits with 1, where any other exception is a bug and shows its traceback.
Its own module, at the bottom of the layers, so that the command can catch every such mistake without importing
the layers that raise them (torch takes seconds to import; a config mistake is said at once)."""


class UserError(Exception):
    """A mistake the message explains; subclasses name what went wrong."""
