"""Execute the notebooks headless on the committed CSVs, which saves their figures under results/figures/.

    python -m scripts.run_notebooks                 # every notebook whose table has a CSV in results/
    python -m scripts.run_notebooks table2 table5   # just these
    python -m scripts.run_notebooks --results results/quick --figures /tmp/figs table2

The notebooks themselves are not rewritten (their outputs stay out of git); each saves its figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
# The CSV each notebook cannot run without.
NEEDS = {"table1": "table1.csv", "table2": "table2.csv", "table3": "table3.csv", "table4": "table4.csv",
         "table5": "table5.csv", "reference": "reference_commonsense.csv"}


def execute_notebook(name: str, results_dir: Path, figures_dir: Path, workdir: Path | None = None) -> None:
    """Run notebooks/<name>.ipynb with IAPT_RESULTS / IAPT_FIGURES pointing at the given folders."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    saved = {k: os.environ.get(k) for k in ("IAPT_RESULTS", "IAPT_FIGURES", "PYTHONPATH")}
    os.environ["IAPT_RESULTS"], os.environ["IAPT_FIGURES"] = str(results_dir), str(figures_dir)
    # notebooks/plots.py imports as it does in Jupyter (cwd = notebooks/), whatever `workdir` is
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NOTEBOOKS), saved["PYTHONPATH"]]))
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir or NOTEBOOKS)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"notebooks to run (default: every one with its CSV): {', '.join(NEEDS)}")
    parser.add_argument("--results", type=Path, default=REPO / "results", help="folder with the CSVs (default results/)")
    parser.add_argument("--figures", type=Path, default=None, help="where figures go (default <results>/figures)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NEEDS]
    if unknown:
        sys.exit(f"unknown notebook(s) {', '.join(unknown)}; valid: {', '.join(NEEDS)}")
    results = args.results.resolve()
    figures = (args.figures or results / "figures").resolve()
    names = args.names or [n for n, csv in NEEDS.items() if (results / csv).exists()]
    if not names:
        sys.exit(f"no table CSVs in {results}: run a table first (e.g. make table2)")
    for name in names:
        if not (results / NEEDS[name]).exists():
            sys.exit(f"{results / NEEDS[name]} does not exist: run `make {name}` first")
        before = {p: p.stat().st_mtime for p in figures.glob("*.png")} if figures.exists() else {}
        execute_notebook(name, results, figures)
        written = sorted(p.name for p in figures.glob("*.png") if before.get(p) != p.stat().st_mtime)
        print(f"{name}: wrote {', '.join(written) or 'no figures'} in {figures}")


if __name__ == "__main__":
    main()
