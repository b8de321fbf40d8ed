"""Traces made elsewhere (trtexec, per-step tables, Nsight Systems reports) as tracegen runs."""
