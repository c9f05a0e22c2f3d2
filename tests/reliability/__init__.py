"""Reliability tests: hostile inputs, damaged files and interrupted writes against the CLI."""
