"""Scoring every method the same way: the evaluator, logits only where needed (positions), and the routes through lm-evaluation-harness (lm_eval_bridge, lm_eval_model)."""
