"""Reading the YAML files avstream takes (calibration, ROS params files): one path, one set of errors."""
from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError


def load_mapping(path, label=None, keys=None) -> dict:
    """The top-level mapping of a YAML file; with ``keys``, only those keys are allowed (a
    misspelled key is an error, not a silent default).

    Raises
    ------
    ConfigError
        Naming ``label`` (default: the path): unreadable, malformed, not a mapping, or a key
        not in ``keys``.
    """
    label = label or str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: malformed YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{label}: expected a mapping of keys")
    if keys is not None:
        refuse_unknown(doc, keys, label)
    return doc


def refuse_unknown(doc: dict, keys, label, why=None) -> None:
    """A key of ``doc`` not in ``keys`` is a ConfigError naming ``label`` (a misspelled key would
    otherwise be ignored and its default used); ``why`` replaces the list of known keys."""
    unknown = sorted(str(k) for k in doc if k not in keys)
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)}"
                          + (why if why is not None else f" (known: {', '.join(keys)})"))
