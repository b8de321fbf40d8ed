"""The static HTML site: altair charts from polars frames, jinja2 templates, one page per run."""
