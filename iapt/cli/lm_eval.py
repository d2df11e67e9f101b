"""lm-eval's own command line, with the `iapt` model registered and our task YAMLs on the include path.

    python -m iapt.cli.lm_eval run --model iapt --model_args adapter=DIR --tasks iapt_mmlu,iapt_bbh \\
        --metadata '{"n": 200}'                  # the first 200 examples (stratified) of each task
    python -m iapt.cli.lm_eval run --model iapt --model_args backbone=smollm2-135m --tasks iapt_bbh

The installed lm-eval (0.4.13) cannot load a model class from outside its package, so this wrapper imports
`iapt.evaluation.lm_eval_model` (which registers `iapt`) and then runs lm-eval's CLI unchanged; every lm-eval flag works.
"""
from __future__ import annotations

import sys

from ..errors import cli


def with_our_tasks(argv: list[str]) -> list[str]:
    """lm-eval arguments with our task folder on the include path (for `run`, `ls` and `validate`)."""
    from ..evaluation.lm_eval_model import TASKS_DIR
    if argv and argv[0] in ("run", "ls", "validate") and not any(a.startswith("--include_path") for a in argv):
        return [*argv, "--include_path", str(TASKS_DIR)]
    return list(argv)


@cli
def main(argv=None) -> None:
    """lm-eval's CLI; a bad adapter or backbone argument ends in one message, as with iapt-train."""
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging
    argv = with_our_tasks(list(sys.argv[1:] if argv is None else argv))
    setup_logging()
    sys.argv = ["lm-eval", *argv]      # HarnessCLI reads sys.argv
    parser = HarnessCLI()
    parser.execute(parser.parse_args())


if __name__ == "__main__":
    main()
