"""``od-export benchmark``: COCO mAP, latency and size of every artifact of an export."""
from od_export.benchmark.data import DataSource
from od_export.benchmark.report import BenchmarkResult, Gates, format_table
from od_export.benchmark.run import BenchmarkOptions, benchmark

__all__ = ["BenchmarkOptions", "BenchmarkResult", "DataSource", "Gates", "benchmark", "format_table"]
