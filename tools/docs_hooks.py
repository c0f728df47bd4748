"""MkDocs hook (mkdocs.yml `hooks:`): pages generated from the code at every build.

* `api/tensor_methods.md`: torch.Tensor's methods that `jaxmodule.Tensor` has and that
  Parameters and Buffers carry. They are installed by `setattr` loops
  (`jaxmodule/_tensor_type.py`, `jaxmodule/nn/parameter.py`), so neither `help()` nor
  mkdocstrings' static analysis sees them.
* `api/layer_table.md`: every `jaxmodule.nn` layer class with its torch name, by family (the
  file that defines it).

Both are built from the imported package, so they cannot go stale; `tests/test_docs_build.py`
checks their content. `python tools/docs_hooks.py tensor|layers` prints a page.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

__all__ = ["tensor_methods_page", "layer_table_page", "on_files"]

# The family heading of each file in jaxmodule/nn/modules/.
FAMILIES = {
    "module": "Module",
    "container": "Containers",
    "linear": "Linear",
    "conv": "Convolution",
    "pooling": "Pooling",
    "padding": "Padding",
    "activation": "Activations",
    "normalization": "Normalization",
    "batchnorm": "Batch normalization",
    "instancenorm": "Instance normalization",
    "dropout": "Dropout",
    "sparse": "Embeddings",
    "rnn": "Recurrent",
    "transformer": "Transformer",
    "attention": "Attention",
    "loss": "Losses",
    "distance": "Distances",
    "flatten": "Flatten",
    "fold": "Fold / Unfold",
    "pixelshuffle": "Pixel shuffle",
    "channelshuffle": "Channel shuffle",
    "upsampling": "Upsampling",
}


def _summary(obj: Any) -> str:
    """The first sentence-line of a docstring, safe inside a Markdown table cell."""
    doc = inspect.getdoc(obj) or ""
    line = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    parts = line.split("`")  # outside code spans, brackets are not links and pipes not columns
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("[", "\\[").replace("]", "\\]")
    return "`".join(parts).replace("|", "\\|")


def tensor_methods_page() -> str:
    """Markdown for `api/tensor_methods.md`, built from `jaxmodule.Tensor` and the cell class."""
    import jaxmodule  # noqa: F401 - installs the methods on the cells
    from jaxmodule import _tensor_type
    from jaxmodule.nn.parameter import _TensorCell

    tensor_vars = vars(_tensor_type.Tensor)
    names = sorted(k for k, v in tensor_vars.items() if not k.startswith("_") and callable(v))
    shared = set(_tensor_type.SHARED_WITH_FUNCTIONS)
    inplace = set(_tensor_type.INPLACE_METHODS)
    rows = []
    for name in names:
        fn = tensor_vars[name]
        own = _TensorCell.__dict__.get(name)
        if name in inplace:
            on_array = "TypeError naming the out-of-place form"
            on_cell = (
                "in place: replaces the held array"
                if own is not fn
                else "TypeError (no in-place form)"
            )
        else:
            on_array = (
                f"same as [`jaxmodule.{name}`](jaxmodule.md)"
                if name in shared
                else "returns a jax array"
            )
            on_cell = "same, on the held array"
        rows.append(f"| `{name}` | {on_array} | {on_cell} | {_summary(fn) or '&nbsp;'} |")
    cell_only = sorted(
        k for k in vars(_TensorCell) if not k.startswith("_") and k not in tensor_vars
    )
    cell_rows = [
        f"| `{k}` | {_summary(getattr(_TensorCell, k, None)) or '&nbsp;'} |" for k in cell_only
    ]
    return "\n".join(
        [
            "# Tensor methods",
            "",
            "torch model code calls tensor methods (`x.view(B, T, C)`, `p.sum(dim=1)`). JAX arrays have",
            "methods of their own with other signatures, so jaxmodule provides torch's as",
            "`jaxmodule.Tensor.<method>(x, ...)` (called exactly as `torch.Tensor.<method>(t, ...)`), and",
            "Parameters and Buffers carry them as methods (`param.transpose(0, 1)`). Results are plain",
            "jax arrays. These methods are installed by loops at import time, so `help(Parameter)`",
            "does not list them: this page is generated from the code at every build.",
            "",
            f'{len(names)} methods. "same as `jaxmodule.<name>`": the method *is* the top-level',
            "function (`Tensor.sum is jaxmodule.sum`). In-place methods (`fill_`, `add_`, ...) replace",
            "the array held by a Parameter or Buffer; on a plain (immutable) jax array they raise a",
            "TypeError that shows the out-of-place form.",
            "",
            "| method | `jaxmodule.Tensor.<method>(x)` on a jax array | on a Parameter / Buffer | summary |",
            "|---|---|---|---|",
            *rows,
            "",
            "## Attributes of Parameters and Buffers only",
            "",
            "| name | summary |",
            "|---|---|",
            *cell_rows,
            "",
            "Operators (`p + 1`, `p @ x`, `-p`, comparisons) return plain jax arrays; augmented assignments",
            "(`p += 1`, `p *= 0.5`) replace the held array, as the in-place methods do.",
            "",
        ]
    )


def layer_table_page() -> str:
    """Markdown for `api/layer_table.md`: every layer class of `jaxmodule.nn`, grouped by file."""
    from jaxmodule import nn

    by_file: dict[str, list[type]] = {}
    for name, obj in sorted(vars(nn).items()):
        if isinstance(obj, type) and issubclass(obj, nn.Module) and not name.startswith("_"):
            by_file.setdefault(obj.__module__.rsplit(".", 1)[-1], []).append(obj)
    unknown = sorted(set(by_file) - set(FAMILIES))
    if unknown:
        raise RuntimeError(
            f"tools/docs_hooks.py: FAMILIES has no heading for jaxmodule.nn.modules "
            f"file(s) {unknown}; add one"
        )
    total = sum(len(v) for v in by_file.values())
    out = [
        "# Layer table",
        "",
        f"All {total} `nn.Module` classes that `jaxmodule.nn` exports, generated from the code at every",
        "build. Each has torch's name, constructor signature, defaults, state_dict keys and repr;",
        "the details are in [Layers](nn_layers.md).",
        "",
    ]
    for file, title in FAMILIES.items():
        classes = by_file.get(file)
        if not classes:
            continue
        out += [f"## {title}", "", "| jaxmodule | torch | summary |", "|---|---|---|"]
        out += [
            f"| `jaxmodule.nn.{c.__name__}` | `torch.nn.{c.__name__}` | {_summary(c) or '&nbsp;'} |"
            for c in classes
        ]
        out.append("")
    return "\n".join(out)


PAGES = {"api/tensor_methods.md": tensor_methods_page, "api/layer_table.md": layer_table_page}


def on_files(files: Any, config: Any) -> Any:
    """MkDocs event: add the generated pages to the build."""
    from mkdocs.structure.files import File

    for path, make in PAGES.items():
        files.append(File.generated(config, path, content=make()))
    return files


if __name__ == "__main__":
    print({"tensor": tensor_methods_page, "layers": layer_table_page}[sys.argv[1]]())
