"""Infrastructure: cached result tables, presets, paths, input checks, student copies, the papermill runner."""
