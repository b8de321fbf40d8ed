"""Inference backends and the device layers they run on.

A backend is a small class in the style of Polygraphy's runners: construct it cheaply, then
``activate`` (heavy imports, model load or engine build), ``prepare`` per batch size, ``enqueue``
per iteration, ``deactivate``. Device work (streams, events, pinned buffers, copies) belongs to
a ``Device``; ``HostDevice`` is the CPU one, ``backends.cuda.CudaDevice`` the pycuda one.
"""
