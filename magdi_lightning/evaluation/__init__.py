"""Judging a trained student: generation on held-out questions (greedy, sampled,
self-consistency, programs run in the sandbox), accuracy with confidence intervals, and
the reports and plots of a run. How one output is scored lives below, in
:mod:`magdi_lightning.scoring`."""
