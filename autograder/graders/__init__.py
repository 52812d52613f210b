"""Hidden graders: pytest files that judge a submission's observations (never shipped to students)."""
