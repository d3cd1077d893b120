"""Stepwell api service."""
