"""Surviving upstream failures: health tracking (breakers, retry policy and hedging build on it)."""
