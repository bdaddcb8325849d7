"""Errors that stop a pipeline run with a message meant for a person."""

from __future__ import annotations


class PipelineError(Exception):
    """A run stopped on purpose. The message names the problem and the fix."""

    exit_code = 1


class ConfigError(PipelineError):
    """mlops.toml (or an override of it) has a missing or invalid value."""


class DataValidationError(PipelineError):
    """The input data does not match the schema; nothing downstream ran."""


class JobFailedError(PipelineError):
    """A training or processing job ended in Failed or Stopped."""


class ArtifactError(PipelineError):
    """An artifact could not be stored or fetched; nothing that names it was recorded."""


class GateRejectedError(PipelineError):
    """The candidate did not pass the evaluation gate; the champion stays."""

    exit_code = 3


class EndpointError(PipelineError):
    """The endpoint could not be started, or did not answer as the contract says."""
