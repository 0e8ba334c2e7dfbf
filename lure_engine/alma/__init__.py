"""ALMA (anytime learning at macroscale) stream simulation, used by ``lure bench alma``."""

from lure_engine.alma.report import markdown_table, plot, summarise
from lure_engine.alma.simulator import AlmaConfig, MegaBatchRecord, run_alma, run_stream
from lure_engine.alma.stream import MegaBatch, make_stream, split_train_val

__all__ = [
    "AlmaConfig",
    "MegaBatch",
    "MegaBatchRecord",
    "make_stream",
    "markdown_table",
    "plot",
    "run_alma",
    "run_stream",
    "split_train_val",
    "summarise",
]
