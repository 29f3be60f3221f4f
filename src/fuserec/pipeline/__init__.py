"""Orchestration: one path from a catalog folder to served artifacts.

:mod:`fuserec.pipeline.run` runs the stages in order (validate, encode, fuse, describe and
route, train and select the models, evaluate, write artifacts and the report);
:mod:`fuserec.pipeline.describe` is the describe stage and the consistency router's
threshold search. Nothing below the CLI imports this package.
"""

from fuserec.pipeline.describe import DescribeConfig, run_describe_stage, show_described
from fuserec.pipeline.run import PipelineConfig, run_demo, run_pipeline

__all__ = ["DescribeConfig", "PipelineConfig", "run_demo", "run_describe_stage", "run_pipeline",
           "show_described"]
