"""Inventory services: scan, disk use, reclaim plans, trash (shared by views, tasks, CLI)."""

from .disk import (
    BACKEND_TOTALS_QUERIES,
    DISK_USAGE_QUERIES,
    ENTRY_ACTIVITY_QUERIES,
    backend_totals,
    disk_usage_by_entry,
    entry_activity,
    usage_for,
)
from .scanning import latest_scan, run_scan

__all__ = [
    "BACKEND_TOTALS_QUERIES",
    "DISK_USAGE_QUERIES",
    "ENTRY_ACTIVITY_QUERIES",
    "backend_totals",
    "disk_usage_by_entry",
    "entry_activity",
    "latest_scan",
    "run_scan",
    "usage_for",
]
