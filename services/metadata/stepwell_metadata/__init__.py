"""Stepwell metadata service."""
