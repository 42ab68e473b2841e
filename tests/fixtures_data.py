"""Fixtures for the data area (owned by that area's tests)."""
