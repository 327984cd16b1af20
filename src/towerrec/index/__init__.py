"""towerrec.index."""
