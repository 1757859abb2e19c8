"""Metrics for Prometheus (docs/metrics.md): counters of what processes did (instruments), the
state the database holds (state), and the route templates that keep labels bounded (endpoints).
"""
