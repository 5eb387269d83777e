"""One module per notebook: its configuration, run, plot_* functions and conclusions."""
