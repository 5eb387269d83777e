"""Data: synthetic Gaussian mixtures (``synthetic``) and real molecular property tasks (``molecules``)."""
