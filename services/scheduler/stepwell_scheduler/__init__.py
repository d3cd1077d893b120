"""Stepwell scheduler service."""
