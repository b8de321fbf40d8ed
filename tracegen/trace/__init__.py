"""Trace files of a run: schema, manifest, incremental writer and validating reader."""
