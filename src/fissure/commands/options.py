"""Options that several command groups share, so their help reads the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:N or mps.")]
Dtype = Annotated[
    str,
    typer.Option(
        help="float32; bfloat16 (fast on a GPU or a CPU with native bfloat16, AVX512-BF16 or "
        "AMX; slow on other CPUs); float16 on a GPU."
    ),
]
