"""Reports: the schema, flat rows (CSV and tables), per-mode metrics and plots."""
