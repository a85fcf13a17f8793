"""The pure planners: what sync, add, delete and restore would change, and their brakes. No I/O."""
