"""Ready-made training recipes: data preparation, model, trainer and evaluation in one call."""

from towerrec.recipes.multitask import MultitaskResult, prepare_multitask, run_multitask

__all__ = ["MultitaskResult", "prepare_multitask", "run_multitask"]
