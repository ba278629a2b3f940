"""Suite-wide setting: every test uses tiny tensors, for which torch's intra-op thread pool only adds contention
(closure/backward tests ran ~25x slower with 2 threads on a loaded 2-core machine)."""

import torch

torch.set_num_threads(1)
