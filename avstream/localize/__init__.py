"""Localization methods: each returns a Heatmap; see base.LOCALIZERS for the registry."""
from .base import LOCALIZERS, Localizer, make_localizer, register  # noqa: F401
from . import srp_phat  # noqa: F401  (registers "srp_phat")
