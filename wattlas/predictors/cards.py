"""Model cards (skops ``Card``): evaluation table, training data, licence, limits, how to load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bundle import Predictor

COLUMNS = ("target", "scheme", "method", "n", "mape_pct", "median_ape_pct", "p90_ape_pct", "r2_log", "bias_log",
           "worst_group", "worst_group_mape_pct")


def metrics_markdown(metrics: list[dict]) -> str:
    if not metrics:
        return "No grouped cross-validation was run for this file (trained with evaluation off)."
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in metrics:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + " |")
    for row in metrics:
        for key, values in row.items():
            if key.endswith("_mape_pct") and isinstance(values, dict):
                what = "held-out group" if key == "group_mape_pct" else key.removesuffix("_mape_pct")
                parts = ", ".join(f"{k} {v}" for k, v in values.items())
                lines.append(f"\nwattlas MAPE (%) per {what}, {row['target']} {row['scheme']}: {parts}")
    return "\n".join(lines)


def write_card(predictor: Predictor, meta: dict, path: Path) -> None:
    from skops import card

    # No template: every section is written here, none left as "[More Information Needed]".
    c = card.Card(predictor.estimator, model_diagram=False, template=None)
    td = meta["training_data"]
    methods = "\n".join(f"- `{k}`: {v}" for k, v in meta["methods"].items())
    schemes = "\n".join(f"- `{s['name']}` (group column `{s['group']}`): {s['description']}" for s in meta["schemes"])
    inputs = "\n".join(f"- `{i['name']}` ({i['kind']}{', ' + i['unit'] if i['unit'] else ''}"
                       f"{', default ' + repr(i['default']) if i['default'] is not None else ''}): {i['description']}"
                       for i in meta["inputs"])
    c.add(**{
        "Model description": (
            f"{meta['title']}. Predicts `{meta['target']}` ({meta['target_unit']}): {meta['target_doc']}. "
            "A `wattlas.predictors.estimators.ResidualBoostingRegressor` (gradient-boosted trees on the log "
            f"ratio of the measurement to the physics base `{meta['base_feature']}`)."
        ),
        "Inputs": inputs,
        "Hyperparameters": ", ".join(f"`{k}={v!r}`" for k, v in predictor.estimator.get_params().items()),
        "Training data": (
            f"Sources: {', '.join(meta['sources'])}. {td['rows']:,} rows ({td['scored_rows']:,} scored in "
            f"cross-validation). Per GPU: {td.get('gpu', {})}. Licence of the data: {meta['licence']}."
        ),
        "Evaluation": (
            "Grouped cross-validation only (no row shuffling); each row below holds out every group in turn "
            "and scores the out-of-fold predictions. Baselines ran on the same folds in the same run.\n\n"
            f"Schemes:\n{schemes}\n\nMethods:\n{methods}\n\n{metrics_markdown(meta['metrics'])}\n\n"
            "APE = absolute percentage error; `r2_log` = R² of ln(prediction) vs ln(truth); `bias_log` = mean "
            f"ln(prediction / truth). In-sample MAPE of the shipped fit (not a generalisation figure): "
            f"{meta.get('in_sample_mape_pct')} %."
        ),
        "Limitations": "\n".join(f"- {x}" for x in meta["limits"]),
        "How to load": (
            "```python\nfrom wattlas.predictors import load\n"
            f"model = load({meta['name']!r})  # checks the SHA-256 and an explicit skops trusted-type list\n"
            "model.predict(frame)  # a polars DataFrame with the input columns\n```\n"
            f"Command line: `wattlas predict {meta['name']} ...`. Never load this file with pickle or joblib."
        ),
        "Versions": ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
    })
    c.save(path)
