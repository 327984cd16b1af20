"""Exceptions raised by towerrec."""

from __future__ import annotations


class TowerrecError(Exception):
    """Base class of every towerrec error."""


class NotFittedError(TowerrecError, ValueError):
    """A fitted transform or index was used before `fit` / `index` was called."""


class DataFormatError(TowerrecError, ValueError):
    """A data file is malformed; the message names the file, the line and the fix."""


class ChecksumError(TowerrecError):
    """A downloaded file does not match its pinned checksum."""


class BundleError(TowerrecError):
    """An exported bundle is missing a part, is corrupted, or was tampered with."""


class ConfigError(TowerrecError, ValueError):
    """A configuration key or value is invalid; the message names the key and allowed values."""
