"""What runs around a method: run records and locks, experiment tracking, callbacks,
distributed strategies, config checks, and the aggregation of many runs' results."""
