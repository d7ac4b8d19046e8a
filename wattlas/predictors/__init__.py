"""Regressors trained on real measurements: runtime, power and interference (`wattlas predictors`).

Each predictor ships inside the package as a skops file with a JSON contract and a model card;
:func:`load` checks the file's hash and an explicit allow-list of types before building it.

Examples
--------
>>> from wattlas.predictors import available, load
>>> "training-power" in available()
True
>>> model = load("training-power")
>>> float(model.predict({"gpu": ["A40"], "power_limit_w": [300.0], "batch_size": [128],
...                      "ref_power_w": [250.0], "ref_time_s": [100.0]})[0]) > 0
True
"""

from __future__ import annotations

from .bundle import MODELS_DIR, TRUSTED_TYPES, Predictor, UntrustedModelError, available, load, save
from .definitions import DEFINITIONS, get_definition

__all__ = ["DEFINITIONS", "MODELS_DIR", "TRUSTED_TYPES", "Predictor", "UntrustedModelError", "available",
           "get_definition", "load", "save"]
