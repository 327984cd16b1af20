"""towerrec.layers."""
