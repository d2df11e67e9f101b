"""The command-line front ends: iapt-train, iapt-predict, iapt-lm-eval (see pyproject.toml)."""
