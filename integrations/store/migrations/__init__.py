"""Alembic script directory for the label store (a package so that every migration ships with labelflow)."""
