"""Suite-wide setting: every test uses tiny tensors, for which torch's intra-op thread pool only adds contention
(closure/backward tests ran ~25x slower with 2 threads on a loaded 2-core machine)."""

import torch

torch.set_num_threads(1)

from adaptim.functional import fused  # noqa: E402

# The fused kernels are compiled for chunks of fused.CHUNK tensors; the suite's models are small, and a chunk of 2
# compiles in about a third of the time of the default 8 (the generated loop is the same, repeated per tensor).
# One compile cache serves the whole session: the compiled functions are cached in the process, and inductor's
# on-disk cache (TORCHINDUCTOR_CACHE_DIR) serves later sessions.
fused.CHUNK = 2
