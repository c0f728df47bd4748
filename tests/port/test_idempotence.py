"""Running the port on its own output changes nothing: the fixtures and a file of every rule."""

import textwrap

import pytest
from jaxmodule.port import port_source

from tests.port._porting import TORCH_SOURCES

EVERY_RULE = textwrap.dedent("""\
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            with torch.no_grad():
                self.fc.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.view(x.size(0), -1).float()
            x[:, 0] += 1
            x.masked_fill_(x > 3, 0.0)
            x.add_(torch.ones_like(x), alpha=2)
            return self.fc(x).relu()


    def train(model, optimizer, loader, accum):
        model.to(device)
        for step, (x, y) in enumerate(loader):
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = nn.functional.mse_loss(out, y)
            (loss / accum).backward()
            optimizer.step()
            print(out.argmax(1), loss.item())
            torch.cuda.synchronize()


    def accumulate(model, chunks):
        total = 0
        for c in chunks:
            total = total + model(c).sum()
        total.backward()
    """)


def _sources():
    files = sorted(p for p in TORCH_SOURCES.glob("*.py") if p.name != "__init__.py")
    return [pytest.param(p.read_text(), id=p.stem) for p in files] + [
        pytest.param(EVERY_RULE, id="every_rule")
    ]


@pytest.mark.parametrize("source", _sources())
def test_second_run_changes_nothing(source):
    once = port_source(source)
    assert once.source != source
    twice = port_source(once.source)
    assert twice.source == once.source
    assert [i.reason for i in twice.issues] == [i.reason for i in once.issues]
