"""towerrec.tasks."""
