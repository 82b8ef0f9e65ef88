"""Scoring teacher and student answers against gold answers.

Importers need one shared notion of "what answer did this response give" so that node
correctness means the same thing for every data source; it lives here so the evaluation
code judges students by exactly the same rules.
"""
