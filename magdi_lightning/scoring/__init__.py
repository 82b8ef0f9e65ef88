"""How an output is judged: answer extraction and comparison, math equivalence, and the
kernel sandbox that runs model-written programs. No torch: importers, teachers, data and
evaluation all score with these same rules, so "correct" means one thing everywhere."""
