"""towerrec.serving."""
