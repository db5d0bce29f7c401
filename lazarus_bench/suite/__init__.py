"""The suite: runs claims on models (runner), keeps result records (records) and renders REPORT.md (report)."""
