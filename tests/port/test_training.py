"""Training loops: `.backward()` and the forward computation before it -> jaxmodule.backward."""

import textwrap

import jaxmodule
import numpy as np
import torch

from tests.helpers import assert_close, randn
from tests.port._porting import ported, reasons

HEAD = "import torch\nimport torch.nn.functional as F\n\n\n"
JM_HEAD = "import jaxmodule\nimport jaxmodule.nn.functional as F\n\n\n"


def check(src: str, expected: str) -> None:
    assert ported(HEAD + textwrap.dedent(src)) == JM_HEAD + textwrap.dedent(expected)


def test_one_expression():
    check(
        """\
        def step(model, criterion, x, y):
            loss = criterion(model(x), y)
            loss.backward()
            return loss.item()
        """,
        """\
        def step(model, criterion, x, y):
            loss = jaxmodule.backward(lambda: criterion(model(x), y))
            return jaxmodule.Tensor.item(loss)
        """,
    )


def test_intermediate_inlined_and_optimizer_calls_kept():
    check(
        """\
        def train(model, optimizer, loader):
            for data, target in loader:
                optimizer.zero_grad()
                output = model(data)  # forward
                loss = F.nll_loss(output, target)
                loss.backward()
                optimizer.step()
        """,
        """\
        def train(model, optimizer, loader):
            for data, target in loader:
                optimizer.zero_grad()
                # forward
                loss = jaxmodule.backward(lambda: F.nll_loss(model(data), target))
                optimizer.step()
        """,
    )


def test_output_used_later_is_an_aux_result():
    check(
        """\
        def train(model, optimizer, data, target):
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            return output.argmax(dim=1)
        """,
        """\
        def train(model, optimizer, data, target):
            def loss_fn():
                output = model(data)
                loss = F.nll_loss(output, target)
                return loss, output
            loss, output = jaxmodule.backward(loss_fn, has_aux=True)
            optimizer.step()
            return jaxmodule.Tensor.argmax(output, dim=1)
        """,
    )


def test_loss_read_before_backward():
    check(
        """\
        def step(model, x, y, log):
            loss = F.mse_loss(model(x), y)
            log.append(loss.item())
            loss.backward()
        """,
        """\
        def step(model, x, y, log):
            loss = jaxmodule.backward(lambda: F.mse_loss(model(x), y))
            log.append(jaxmodule.Tensor.item(loss))
        """,
    )


def test_zero_grad_between_forward_and_backward_stays_first():
    check(
        """\
        def step(model, optimizer, x, y):
            logits, loss = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward(retain_graph=True)
        """,
        """\
        def step(model, optimizer, x, y):
            optimizer.zero_grad(set_to_none=True)
            def loss_fn():
                logits, loss = model(x, y)
                return loss
            loss = jaxmodule.backward(loss_fn)
        """,
    )


def test_scaled_loss():
    check(
        """\
        def step(model, x, y, accum):
            loss = F.cross_entropy(model(x), y)
            (loss / accum).backward()

        def step_logged(model, x, y, accum):
            loss = F.cross_entropy(model(x), y)
            (loss / accum).backward()
            return loss.item()
        """,
        """\
        def step(model, x, y, accum):
            jaxmodule.backward(lambda: F.cross_entropy(model(x), y) / accum)

        def step_logged(model, x, y, accum):
            def loss_fn():
                loss = F.cross_entropy(model(x), y)
                return loss / accum, loss
            _, loss = jaxmodule.backward(loss_fn, has_aux=True)
            return jaxmodule.Tensor.item(loss)
        """,
    )


def test_recurrent_state_is_an_argument_and_a_result():
    check(
        """\
        def train(model, criterion, batches, hidden):
            for data, targets in batches:
                hidden = repackage(hidden)
                output, hidden = model(data, hidden)
                loss = criterion(output, targets)
                loss.backward()
            return hidden

        def repackage(h):
            return tuple(v.detach() for v in h)
        """,
        """\
        def train(model, criterion, batches, hidden):
            for data, targets in batches:
                hidden = repackage(hidden)
                def loss_fn(hidden):
                    output, hidden = model(data, hidden)
                    loss = criterion(output, targets)
                    return loss, hidden
                loss, hidden = jaxmodule.backward(lambda: loss_fn(hidden), has_aux=True)
            return hidden

        def repackage(h):
            return tuple(jaxmodule.Tensor.detach(v) for v in h)
        """,
    )


def test_autocast_block_moves_into_the_function():
    check(
        """\
        def step(model, x):
            with torch.autocast("cpu"):
                out = model(x)
                loss = out.sum()
            loss.backward()
        """,
        """\
        def step(model, x):
            def loss_fn():
                with jaxmodule.autocast("cpu"):
                    out = model(x)
                    loss = jaxmodule.Tensor.sum(out)
                return loss
            loss = jaxmodule.backward(loss_fn)
        """,
    )


def test_backward_on_an_expression():
    check(
        """\
        def step(model, x):
            model(x).mean().backward()
        """,
        """\
        def step(model, x):
            jaxmodule.backward(lambda: jaxmodule.Tensor.mean(model(x)))
        """,
    )


def test_unconvertible_reported():
    src = HEAD + textwrap.dedent("""\
        def accumulate(model, chunks):
            total = 0
            for c in chunks:
                total = total + model(c).sum()
            total.backward()

        def given(loss):
            loss.backward()

        def vector(model, x, g):
            y = model(x)
            y.backward(gradient=g)

        def peek(model, x):
            out = model(x)
            print(out.shape)
            loss = out.sum()
            loss.backward()
        """)
    assert ported(src).count(".backward()") == 3
    assert reasons(src) == [
        "the loss is accumulated in a loop before `.backward()`: move the loop into a function and "
        "call `jaxmodule.backward(fn)`",
        "`.backward()` on a loss not computed in this block (a function argument, an outer block or "
        "a previous loop iteration): compute it in a function and call `jaxmodule.backward(fn)`",
        "`.backward(gradient=...)` is not ported: use jaxmodule.grad / jax.vjp for this gradient",
        "a statement between the forward pass and `.backward()` uses its intermediate values: move "
        "it after `.backward()`",
    ]


def test_converted_step_matches_torch():
    """The rewritten loop computes torch's gradients and steps (one Linear, SGD)."""
    src = HEAD + textwrap.dedent("""\
        def fit(model, optimizer, batches):
            losses = []
            for x, y in batches:
                optimizer.zero_grad()
                output = model(x)
                loss = F.mse_loss(output, y)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            return losses
        """)
    torch_ns: dict = {}
    exec(src, torch_ns)
    jm_ns: dict = {}
    exec(ported(src), jm_ns)
    torch_model = torch.nn.Linear(3, 2)
    model = jaxmodule.nn.Linear(3, 2)
    model.load_state_dict(torch_model.state_dict())
    batches = [(randn(5, 3, seed=s), randn(5, 2, seed=s + 9)) for s in range(3)]
    losses = jm_ns["fit"](
        model,
        jaxmodule.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        [(jaxmodule.tensor(x), jaxmodule.tensor(y)) for x, y in batches],
    )
    t_losses = torch_ns["fit"](
        torch_model,
        torch.optim.SGD(torch_model.parameters(), lr=0.1, momentum=0.9),
        [(torch.tensor(x), torch.tensor(y)) for x, y in batches],
    )
    assert_close(np.array(losses), np.array(t_losses))
    assert_close(model.weight, torch_model.weight)
    assert_close(model.bias, torch_model.bias)
