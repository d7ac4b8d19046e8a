"""Characterizations of the store's tables, computed in DuckDB/polars."""

from .summary import trace_summary

__all__ = ["trace_summary"]
