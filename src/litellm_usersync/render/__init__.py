"""Renderers: plans, results and listings as text, CSV, JSON and Markdown. Pure."""
