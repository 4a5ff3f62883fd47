import os

from hypothesis import HealthCheck, settings

# Kernels compile on first use (cached on disk afterwards); no deadline for that.
settings.register_profile(
    "fastgrad",
    deadline=None,
    max_examples=int(os.environ.get("FASTGRAD_HYPOTHESIS_EXAMPLES", "25")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("fastgrad")

# The CUDA-simulator tests run in their own process (tests/test_cuda.py), because
# NUMBA_ENABLE_CUDASIM must be set before numba is imported.
collect_ignore = [] if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else ["cuda_sim"]
