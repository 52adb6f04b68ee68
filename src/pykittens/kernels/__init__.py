"""The pykittens kernel library: tile kernels behind torch-facing functions that check their inputs."""
from .attention import attention, attention_bnhd, reference_attention  # noqa: F401
from .attention_warp import warp_attention  # noqa: F401
from .matmul import matmul  # noqa: F401,E402
from .gemm import gemm  # noqa: F401,E402
from .attention_hopper import hopper_attention  # noqa: F401,E402
from .attention_bwd import attention_bwd, attention_bwd_dq, attention_bwd_prep  # noqa: F401,E402
