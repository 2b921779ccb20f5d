"""A small model that Parity does not bundle: the worked example of docs/recording-goldens.md.

Its own forward() (not a config-driven Sequential): conv -> ReLU -> max-pool -> flatten -> Linear -> ReLU -> Linear,
on 16x16 single-channel images. Widths are constructor arguments (the recorder passes them as --kwargs JSON); the
hidden Linear's rows are `channels * 8 * 8` wide, a multiple of 256 with the defaults, so every GGUF block type and
MLX group size applies to it.
"""

from torch import nn


class TinyNet(nn.Module):
    def __init__(self, channels=4, hidden=64, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.act1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten(start_dim=1)
        self.hidden = nn.Linear(channels * 8 * 8, hidden)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.pool(self.act1(self.conv(x)))
        return self.head(self.act2(self.hidden(self.flatten(x))))


class TinyResidual(nn.Module):
    """Not a chain: `block`'s input is computed between modules (x + fc1(x)). The recorder refuses it, naming the
    module (format_version 1 cannot describe a residual add)."""

    def __init__(self, width=8):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.block = nn.Linear(width, width)

    def forward(self, x):
        return self.block(x + self.fc1(x))
