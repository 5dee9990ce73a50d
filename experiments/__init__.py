"""Issue #12's evidence runs: the plan (plan.py), the resumable driver (run.py) and the report
that turns finished runs into docs/results.md (report.py). `make results` runs both."""
