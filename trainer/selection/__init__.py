"""Prompt-OIRL on the training side: a trained prompt selector's evaluation page, its held-out
choices and their export, and the API that chooses a strategy for a query."""
