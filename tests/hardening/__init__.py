"""Hardening tests (issue 9): permissions over every URL, hostile input, faults."""
