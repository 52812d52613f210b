"""The hidden graders: one pytest test per rubric check id; ``expected.py`` holds what they judge by."""

# The name under which ``grading`` registers its plugin in the graders' session; ``conftest.py`` looks it up.
PLUGIN_NAME = "autograder-grading"
