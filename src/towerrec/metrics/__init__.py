"""towerrec.metrics."""
