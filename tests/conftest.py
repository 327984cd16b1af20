"""Test-wide settings: one torch thread, so the suite runs steadily on small shared machines."""

import torch

torch.set_num_threads(1)
