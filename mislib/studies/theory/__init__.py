"""The theory study of notebooks 01-03: every regime of THEORY.md §2-§5 as exact ``log Delta_n`` against n.

- ``tables``: the theory table (``load_rates``, ``regime``, ``theory_rates_table``, ``fit_rate``), the simulated
  membership games and the stochastic-rounding crossovers;
- ``figures``: one ``plot_*`` function per figure of the notebooks;
- ``conclusions``: what each section concludes, computed from the table (``*_conclusions``);
- ``explorer``: ``explore_mis``, the interactive explorer of the exact 1 - MIS_n (ipywidgets).

Every public name of the four is available here: ``from mislib.studies import theory; theory.plot_...``.
"""

from mislib.studies.theory.tables import (MULTIDIM_EXAMPLE, SCALE_EXAMPLE, aligned_grid, crossover_table,
                                          exact_examples, fit_rate, game_configurations, load_rates,
                                          membership_game_table, regime, theory_rates_config, theory_rates_table)
from mislib.studies.theory.figures import (crossing_bound_log, plot_bernoulli_rate, plot_fixed_grid_gaussian,
                                           plot_learned_scale, plot_membership_game, plot_multidim,
                                           plot_on_threshold, plot_size_adaptive_aligned,
                                           plot_size_adaptive_unaligned, plot_stochastic_rounding,
                                           plot_unquantized_rate, rounding_to_nearest_log_delta,
                                           unaligned_margin_fractions)
from mislib.studies.theory.conclusions import (Conclusions, convergence_table, fixed_grid_conclusions,
                                               learned_scale_conclusions, multidim_conclusions,
                                               stochastic_rounding_conclusions, unaligned_conclusions,
                                               unquantized_conclusions)
from mislib.studies.theory.explorer import explore_mis, plot_mis_explorer

__all__ = [
    "MULTIDIM_EXAMPLE", "SCALE_EXAMPLE", "aligned_grid", "crossover_table", "exact_examples", "fit_rate",
    "game_configurations", "load_rates",
    "membership_game_table", "regime", "theory_rates_config", "theory_rates_table",
    "crossing_bound_log", "plot_bernoulli_rate", "plot_fixed_grid_gaussian", "plot_learned_scale",
    "plot_membership_game", "plot_multidim", "plot_on_threshold", "plot_size_adaptive_aligned",
    "plot_size_adaptive_unaligned", "plot_stochastic_rounding", "plot_unquantized_rate",
    "rounding_to_nearest_log_delta", "unaligned_margin_fractions",
    "Conclusions", "convergence_table", "fixed_grid_conclusions", "learned_scale_conclusions",
    "multidim_conclusions", "stochastic_rounding_conclusions", "unaligned_conclusions", "unquantized_conclusions",
    "explore_mis", "plot_mis_explorer",
]
