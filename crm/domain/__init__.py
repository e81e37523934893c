"""Pure domain types and rules (stdlib only: nothing of the project, no I/O)."""
