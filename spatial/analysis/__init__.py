"""Analyses that combine pure geometry with the store (routing, coverage, planning)."""
