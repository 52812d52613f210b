"""nbgrader configuration for Practical 8 (the course directory is the repository root).

nbgrader's source folder is solutions/, its release folder assignment/: `nbgrader generate_assignment practical8`
is the one way the students' files are made. nbgrader clears solutions from notebooks only (jupyter/nbgrader#1237),
so a post-convert hook clears model_parallel.py by the same rule, with nbgrader's own ClearSolutions code.
"""

import os

from autograder.release import clear_released_python

c = get_config()  # noqa: F821 - provided by nbgrader when it reads this file

# The course's id in the exchange (students pass the same with --course); set NBGRADER_COURSE_ID to change it.
c.CourseDirectory.course_id = os.environ.get("NBGRADER_COURSE_ID", "practical8-course")
# The exchange folder: NBGRADER_EXCHANGE when set (a private one for a trial, or the shared one an admin made);
# otherwise nbgrader's default, /usr/local/share/nbgrader/exchange, which must already exist.
if os.environ.get("NBGRADER_EXCHANGE"):
    c.Exchange.root = os.environ["NBGRADER_EXCHANGE"]

c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignment"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.png"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.GenerateAssignment.post_convert_hook = clear_released_python
# Grade each student's own model_parallel.py, never the instructor's copy (jupyter/nbgrader#940).
c.Autograde.exclude_overwriting = {"practical8": ["model_parallel.py"]}
# Collecting as root (CI, containers) would otherwise skip every submission owned by another user.
c.ExchangeCollect.check_owner = False
# Feedback never shows hidden test source (jupyter/nbgrader#917, #1363).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
