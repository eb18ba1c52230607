"""Syntax context (tree-sitter), prompt building, token budgets and answer parsing."""
