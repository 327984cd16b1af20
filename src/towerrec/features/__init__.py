"""towerrec.features."""
