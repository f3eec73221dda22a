"""Options that several command groups share, so their help reads the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

Device = Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")]
Dtype = Annotated[
    str,
    typer.Option(
        help="float32; bfloat16 on a GPU or on a CPU with native bfloat16 (AVX512-BF16, AMX); "
        "float16 on a GPU."
    ),
]
