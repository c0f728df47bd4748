"""PyTorch eager implementations of the workloads (CPU, one thread)."""

from __future__ import annotations

from typing import Any

from workloads import LR, MOMENTUM, WORKLOADS, data


def build_torch(name: str) -> tuple[Any, tuple]:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    kind, s, _, _ = WORKLOADS[name]
    if kind == "mlp":
        model = nn.Sequential(
            nn.Linear(s[0], s[1]),
            nn.ReLU(),
            nn.Linear(s[1], s[2]),
            nn.ReLU(),
            nn.Linear(s[2], s[3]),
        )
    elif kind == "cnn":
        model = nn.Sequential(
            nn.Conv2d(s[0], 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 14 * 14, 128),
            nn.ReLU(),
            nn.Linear(128, s[2]),
        )
    elif kind == "stack":
        layers: list = []
        for _ in range(64):
            layers += [nn.Linear(s[0], s[1]), nn.Tanh()]
        model = nn.Sequential(*layers)
    else:
        model = nn.Sequential(
            nn.Linear(s[0], s[1]),
            nn.BatchNorm1d(s[1]),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(s[1], s[2]),
        )
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    crit = nn.CrossEntropyLoss()

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss

    x, y = data(name)
    return step, (torch.from_numpy(x), torch.from_numpy(y).long())
