"""Fixtures for the db area (owned by that area's tests)."""
