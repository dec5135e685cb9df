"""Numeric CSV tables of the calibration commands: a header with exactly the expected column
names, then rows of finite numbers; errors name the file and the line."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import ConfigError


def read_table(path, columns: list) -> np.ndarray:
    """(n_rows, len(columns)) float64 from a CSV whose first line is exactly ``columns``."""
    p = Path(path)
    try:
        fh = open(p, newline="")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})") from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != list(columns):
            raise ConfigError(f"{p}: the first line must be exactly {','.join(columns)}, got {header}")
        rows = []
        for k, row in enumerate(reader, start=2):
            if not row or all(not x.strip() for x in row):
                continue
            try:
                vals = [float(x) for x in row]
            except ValueError:
                raise ConfigError(f"{p}: line {k}: not {len(columns)} numbers: {row}") from None
            if len(vals) != len(columns) or not np.isfinite(vals).all():
                raise ConfigError(f"{p}: line {k}: expected {len(columns)} finite numbers "
                                  f"({','.join(columns)}), got {row}")
            rows.append(vals)
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(columns))
