"""Comparison: per-tensor error statistics, Polygraphy-identical verdicts, streaming compare jobs."""
