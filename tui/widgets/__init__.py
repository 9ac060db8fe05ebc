"""Widgets of the Textual app (graph tree, error table, detail pane)."""
