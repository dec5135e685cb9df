"""Errors that reach the user as one clear line instead of a traceback."""


class AvstreamError(Exception):
    """Base for errors the command line reports as ``avstream: error: <message>``."""


class ConfigError(AvstreamError):
    """A configuration, array or grid that cannot be used; the message names the key and file."""


class InputError(AvstreamError):
    """Audio input that cannot be used: unreadable file, wrong channel count, missing device."""
