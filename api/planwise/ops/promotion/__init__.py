"""Promoting migrations to named environments: drift refusal, verified backup, roll-back."""
