"""One place where `predict` applies a model with its physics guards and its domain flags.

:func:`predict_checked` is what every `wattlas predict` path (a point, a batch, to a file or
not) calls instead of :meth:`Predictor.predict_frame`:

- LLM rows (a ``model`` the estimate table knows, a ``gpu``) must fit in memory
  (:func:`wattlas.predictors.memory.check_rows`), else :class:`MemoryFitError` with the numbers;
- a predictor that predicts time and energy from a power limit it was not trained across
  (``power_limit_w`` input, targets in s and J: ``llm-energy``) is evaluated at the TDP and then
  capped with the measured cap curve (:mod:`wattlas.predictors.powercap`), not along its roofline
  base, which scales energy with the limit at unchanged time;
- the returned :class:`DomainSummary` counts rows outside the training envelope, a cap below the
  curve's range, and a tensor-parallel degree other than 1 for a model measured on one GPU;
  :func:`domain_warning` turns it into a warning above :data:`OOD_WARN_SHARE` (any row for a point).
"""

from __future__ import annotations

import numpy as np

from .bundle import DomainSummary, Predictor
from .estimate import OOD_WARN_SHARE  # one threshold for `estimate` and `predict`


def _units(predictor: Predictor) -> dict[str, str]:
    d = predictor.definition
    return {t[0]: t[1] for t in d.targets} or {d.target: d.target_unit}


def caps_by_curve(predictor: Predictor) -> bool:
    """Whether a power limit is applied with the cap curve: time and energy targets, a power-limit input."""
    units = set(_units(predictor).values())
    return {"s", "J"} <= units and any(i.name == "power_limit_w" for i in predictor.definition.inputs)


def _tdp_w(gpus) -> np.ndarray:
    from .gpus import get_gpu

    cache = {g: get_gpu(g).tdp_w for g in set(gpus)}
    return np.array([np.nan if cache[g] is None else cache[g] for g in gpus], dtype=np.float64)


def predict_checked(predictor: Predictor, frame):
    """``(frame with predictions and out_of_domain, DomainSummary)`` with the guards above."""
    import polars as pl

    from . import memory, powercap

    if not isinstance(frame, pl.DataFrame):
        frame = pl.DataFrame(frame)
    memory.check_rows(frame)
    extra: dict[str, np.ndarray] = {}
    envelope = dict(predictor.meta.get("envelope", {}))
    names = list(_units(predictor))
    if caps_by_curve(predictor) and "power_limit_w" in frame.columns and "gpu" in frame.columns:
        tdp = _tdp_w(frame["gpu"].to_list())
        limit = frame["power_limit_w"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        ref = np.where(np.isnan(tdp), limit, tdp)
        cap = np.where(np.isnan(limit), ref, np.fmin(limit, ref))
        uncapped = predictor.predict_frame(frame.with_columns(pl.lit(ref).alias("power_limit_w")))
        units = _units(predictor)
        t_col = next(n for n in names if units[n] == "s")
        e_col = next(n for n in names if units[n] == "J")
        draw = uncapped[e_col].to_numpy() / uncapped[t_col].to_numpy()
        res = powercap.cap_factors(cap, ref, draw)
        scale = {"s": res.time_factor, "J": res.energy_factor, "W": res.power_factor}
        result = uncapped.with_columns(
            [pl.col(n) * pl.Series(scale[units[n]]) for n in names if units[n] in scale]
            + [frame["power_limit_w"]])
        X = predictor.features(frame.with_columns(pl.lit(ref).alias("power_limit_w")))
        if res.below_domain.any():
            extra[powercap.DOMAIN_FEATURE] = res.below_domain
            envelope[powercap.DOMAIN_FEATURE] = [powercap.CURVE.x_min, powercap.CURVE.x_max]
    else:
        result = predictor.predict_frame(frame)
        X = predictor.features(frame)
    if "tensor_parallel" in frame.columns and any(i.name == "model" for i in predictor.definition.inputs) \
            and not any(i.name == "tensor_parallel" for i in predictor.definition.inputs):
        tp = frame["tensor_parallel"].fill_null(1).to_numpy()
        if (tp != 1).any():  # a model measured on one GPU asked about a sharded replica
            extra["tensor_parallel"] = tp != 1
            envelope["tensor_parallel"] = [1.0, 1.0]
    by_feature = {**predictor.out_of_domain_by_feature(X), **extra}
    flags = result["out_of_domain"].to_numpy().copy()
    for f in extra.values():
        flags |= f
    summary = DomainSummary.from_flags(predictor.name, frame.height, by_feature, envelope)
    return result.with_columns(pl.Series("out_of_domain", flags)), summary


def domain_warning(summary: DomainSummary, *, point: bool = False) -> str | None:
    """A warning when any point, or over :data:`OOD_WARN_SHARE` of a batch, lies outside the envelope."""
    if summary.outside == 0 or (not point and summary.share <= OOD_WARN_SHARE):
        return None
    if point:
        return f"the prediction is an extrapolation: {summary.line()}"
    return f"{summary.share:.1%} of the rows are extrapolations: {summary.line()}"
