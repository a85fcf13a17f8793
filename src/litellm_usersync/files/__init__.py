"""The files the tool reads and writes: user file, saved plans, backups, audit log, key journal, run lock."""
