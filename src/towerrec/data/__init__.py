"""towerrec.data."""
