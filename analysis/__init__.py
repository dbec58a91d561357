"""Traces to tables to figures: probes, attributions, sweeps and plotly figures, built on sleepcore."""
