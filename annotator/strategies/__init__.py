"""Prompt strategies and their outcomes per query (Prompt-OIRL, docs/prompt-optimisation.md):
the strategies a project compares, the import of offline logs, and the query x strategy table
the prompt_reward job trains on. Labeling-side: nothing here knows of training."""
