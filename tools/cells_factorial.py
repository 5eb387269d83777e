"""Insert the "Bits or sparsity?" sections (issue 14, part 5) into notebooks 05 and 06.

    python tools/cells_factorial.py [notebooks/05_synthetic_ranking.ipynb] [notebooks/06_molecular_tradeoff.ipynb]

Notebook 05: before the cell whose source contains "## Exercises", or, where there is none, before the last
markdown cell (today "## Conclusions"). Notebook 06: before the cell whose source starts with "## 4. Conclusions".
New cells have no outputs; a notebook that already has the section is left as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Bits or sparsity?"

SYNTHETIC = [
    ("markdown", f"""{HEADING}

The paper asks which matters more for privacy: the number of bits of the value grid, or the share of weights set
exactly to zero. The catalogue above mixes the two (sign, ternary at 33-90% zeros, pruning), so here they are
crossed in a factorial design (`quantizer_specs.FACTORIAL_SPECS`): sign (1 bit, no zeros), ternary (log2 3 bits)
at 50-95% zeros, uniform 3-, 4- and 8-bit grids without pruning and after magnitude pruning at 50-95%, the
bfloat16 and float16 casts, and full-precision weights pruned at 50-95%. Each release is compared with the
unquantized one of the same data set, model and $n$ (several independent data sets, both models, two sizes);
stored bits per weight count the pruning mask. A uniform grid has a zero level of its own, so its unpruned
releases already hold some zeros: the table gives the achieved fraction (`sparsity`) beside the target."""),
    ("code", """from IPython.display import Markdown, display
from mislib.infra.tables import read_sidecar
from mislib.studies import bits_sparsity

factorial = bits_sparsity.run_synthetic(PRESET, seed=SEED)
factorial_changes = bits_sparsity.factorial_changes(factorial)
print(f"{factorial_changes[['model', 'sample_size', 'seed']].drop_duplicates().shape[0]} configurations x "
      f"{factorial_changes.quantizer.nunique()} releases; computed in "
      f"{read_sidecar(bits_sparsity.TABLE_NAME)['wall_time_s']:.0f} s")
cells = bits_sparsity.cell_means(factorial_changes)
cells.round(3)"""),
    ("code", """fig = bits_sparsity.plot_bits_sparsity(factorial, title=factorial.dataset.iloc[0])
savefig(fig, "synthetic_bits_sparsity")"""),
    ("markdown", """Colour: the mean change against the unquantized release (blue = more private, in both panels); under each
number, the stored bits per weight. The sentences below are generated from `bits_sparsity.conclusions`, which
reads the same table: the two contrasts from 8 bits without zeros, the share of variance each factor explains
over the crossed block (3, 4, 8 bits and full precision by 0-95% zeros), and where an effect reverses."""),
    ("code", """factorial_found = bits_sparsity.conclusions(factorial)
display(Markdown(bits_sparsity.conclusions_text(factorial_found)))"""),
    ("code", """# The stated contrasts are differences of the cell means shown in the heat map.
at = cells.set_index(["nominal_bits", "target_sparsity"]).attack_auc_change
assert abs(factorial_found["attack_bits_effect"] - (at[3.0, 0.0] - at[8.0, 0.0])) < 1e-9
assert abs(factorial_found["attack_sparsity_effect"] - (at[8.0, 0.9] - at[8.0, 0.0])) < 1e-9
if PRESET == "paper":
    # (1) for the best attack, sparsity explains more of the variance than the width, in most data sets
    assert factorial_found["attack_leading_factor"] == "sparsity" and factorial_found["attack_leading_fraction"] >= 0.75
    assert factorial_found["attack_effect_ratio"] > 2   # (2) 90% zeros moves the AUC over twice as much as 8 -> 3 bits
    # (3) below 2 bits it reverses: sign (no zeros) is more private than ternary at 50% zeros
    sign = factorial_found["zeros_on_sign"]
    assert sign["sign_attack_auc_change"] < sign["ternary"][0.5][0]"""),
]

MOLECULAR = [
    ("markdown", f"""{HEADING}

The factorial grid of notebook 05 on the molecular heads (`quantizer_specs.FACTORIAL_SPECS`: sign, ternary at
50-95% zeros, uniform 3/4/8-bit with and without pruning, the 16-bit casts, pruned full-precision weights), each
release compared with the unquantized head of the same task, embedder, seed and target model. Colour: mean
change of the best attack's AUC (left) and of the indicator's ranking score (right), blue = more private; under
each number, the stored bits per weight (pruning mask included)."""),
    ("code", """from mislib.studies import bits_sparsity

FACTORIAL_BY = list(dict.fromkeys(c for c in (*study.CONFIGURATION, "target") if c in table.columns))
fig = bits_sparsity.plot_bits_sparsity(table, by=FACTORIAL_BY, title="molecular heads")
savefig(fig, "molecular_bits_sparsity")"""),
    ("code", """factorial_found = bits_sparsity.conclusions(table, by=FACTORIAL_BY)
display(Markdown(bits_sparsity.conclusions_text(factorial_found)))
at = bits_sparsity.cell_means(bits_sparsity.factorial_changes(table, by=FACTORIAL_BY)).set_index(
    ["nominal_bits", "target_sparsity"]).attack_auc_change
assert abs(factorial_found["attack_bits_effect"] - (at[3.0, 0.0] - at[8.0, 0.0])) < 1e-9
assert abs(factorial_found["attack_sparsity_effect"] - (at[8.0, 0.9] - at[8.0, 0.0])) < 1e-9
assert factorial_found["attack_leading_factor"] in ("bits", "sparsity")"""),
]


def _cells(spec):
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    return [make[kind](source) for kind, source in spec]


def _has_section(nb) -> bool:
    return any(cell.source.startswith(HEADING) for cell in nb.cells)


def insert_cells(path: Path, cells_spec, locate, where: str) -> bool:
    """Insert ``cells_spec`` into the notebook at ``path`` before the cell index ``locate(nb)``; False (and
    nothing written) when the section is already there. Raises ValueError when ``locate`` finds no cell."""
    nb = nbformat.read(path, as_version=4)
    if _has_section(nb):
        print(f"{path.name}: already has {HEADING!r}; left as it is")
        return False
    index = locate(nb)
    if index is None:
        raise ValueError(f"{path}: no cell {where}")
    nb.cells[index:index] = _cells(cells_spec)
    nbformat.write(nb, path)
    print(f"{path.name}: {len(cells_spec)} cells inserted before cell {index} ({where})")
    return True


def locate_synthetic(nb):
    """Before the cell containing "## Exercises", else before the last markdown cell."""
    for i, cell in enumerate(nb.cells):
        if "## Exercises" in cell.source:
            return i
    markdown = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"]
    return markdown[-1] if markdown else None


def locate_molecular(nb):
    """Before the cell whose source starts with "## 4. Conclusions"."""
    return next((i for i, cell in enumerate(nb.cells) if cell.source.startswith("## 4. Conclusions")), None)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    synthetic = Path(argv[0]) if argv else ROOT / "notebooks" / "05_synthetic_ranking.ipynb"
    molecular = Path(argv[1]) if len(argv) > 1 else ROOT / "notebooks" / "06_molecular_tradeoff.ipynb"
    insert_cells(synthetic, SYNTHETIC, locate_synthetic, '"## Exercises" (or the last markdown cell)')
    insert_cells(molecular, MOLECULAR, locate_molecular, 'starting "## 4. Conclusions"')


if __name__ == "__main__":
    main()
