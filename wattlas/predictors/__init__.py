"""Regressors trained on real measurements (see `wattlas predictors`)."""
