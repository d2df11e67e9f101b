"""The command line every experiment script shares: `--profile` and `--out-dir`, with one rule for where
outputs go (results/ for the committed profiles, results/quick/ for quick, a temporary folder otherwise)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..errors import unknown
from .runinfo import RESULTS

COMMITTED = {"cpu": RESULTS, "quick": RESULTS / "quick"}   # profiles whose outputs have a place in the repository


def profile_parser(doc: str, profiles: dict, default: str = "cpu") -> argparse.ArgumentParser:
    """A parser with the shared flags; the script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default=default, help=f"one of {', '.join(profiles)} (default {default})")
    ap.add_argument("--out-dir", type=Path, help="where the outputs go (default: results/ for cpu, results/quick/ "
                                                 "for quick, a temporary folder for smoke)")
    return ap


def chosen_profile(args, profiles: dict, committed: dict | None = None) -> tuple[dict, Path]:
    """The profile named by --profile (one clear message for an unknown one) and the output folder:
    --out-dir, else the profile's place in `committed` (default COMMITTED), else a new temporary folder."""
    if args.profile not in profiles:
        raise unknown("profile", args.profile, profiles)
    place = (COMMITTED if committed is None else committed).get(args.profile)
    return profiles[args.profile], args.out_dir or place or Path(tempfile.mkdtemp(prefix=f"iapt-{args.profile}-"))
