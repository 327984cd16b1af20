"""towerrec.train."""
