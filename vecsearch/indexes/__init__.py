"""Every index type. Importing this package defines, and so registers, each of them
(:mod:`vecsearch.registry`): a new index module in this folder is found without further edits."""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
