"""Localization methods: each returns a Heatmap; see base.LOCALIZERS for the registry."""
from .base import LOCALIZERS, Localizer, make_localizer, register  # noqa: F401
from . import intensity, srp_phat, subspace, tf_sparse  # noqa: F401  (each registers itself)
