"""A real single-node SLURM cluster for tests: ``install.sh`` and ``cluster.py``."""
