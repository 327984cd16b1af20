"""towerrec.models."""
