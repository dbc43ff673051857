"""What every IVF index (:mod:`.ivfpq`, :mod:`.ivf_fastscan`) shares besides the kernels: training state
and the list parameters ``nlist`` / ``nprobe`` (a default ``nprobe`` that can be changed and is saved)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..params import parse_params


class IVFListsMixin:
    """``is_trained``, ``nlist`` and a settable ``nprobe`` for an index whose ``params`` (a pydantic
    model of class :attr:`build_params_class`) hold ``nlist`` and ``nprobe`` and whose coarse
    centroids are ``self._centroids`` (None until trained)."""

    build_params_class: ClassVar[type]
    params: Any
    _centroids: Any

    @property
    def is_trained(self) -> bool:
        return self._centroids is not None

    @property
    def nlist(self) -> int:
        return self.params.nlist

    @property
    def nprobe(self) -> int:
        """Default number of lists ``search`` scans (per call: ``nprobe=``); saved with the index."""
        return self.params.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.params = parse_params(self.build_params_class, {**self.params.model_dump(), "nprobe": value},
                                   type(self).__name__)
