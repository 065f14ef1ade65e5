"""Test and benchmark support: stream generators independent of the code under test."""
