"""Writes Tests/ParityTests/Fixtures/mlx-npz/mx_savez.npz with real MLX's mx.savez: a bfloat16 vector (numpy has
no bfloat16; MLX stores it as '<V2'), a transposed matrix (stored with fortran_order True) and a plain matrix.

    .build-venv-mlx/bin/python tools/mlx/make_npz_fixture.py      (venv: tools/mlx/setup-venv.sh)
"""
import os

import mlx.core as mx

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "mlx-npz", "mx_savez.npz")
c = mx.arange(6, dtype=mx.float32).reshape(2, 3)
mx.savez(out, bf16=mx.array([1.5, -2.0, 0.0078125], dtype=mx.bfloat16), t=c.T, c=c)
print("wrote", out, "with mlx", mx.__version__)
