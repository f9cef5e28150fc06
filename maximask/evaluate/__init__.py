"""Evaluation: metrics from confusion counts, plots, LA Cosmic comparison, reports."""
