"""The report stage: report.json and a self-contained report.html."""
