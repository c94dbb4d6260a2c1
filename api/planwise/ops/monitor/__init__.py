"""Monitoring: the five metrics from the statistics views, health thresholds, size history."""
