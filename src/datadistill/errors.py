"""Exceptions raised by the library. The CLI turns every `DatadistillError` into a one-line
message and exit code 2; anything else is a bug and keeps its traceback."""


class DatadistillError(Exception):
    """Base class for errors caused by user input (bad names, files, configs, paths)."""


class UnknownNameError(DatadistillError):
    """A registry lookup failed; the message lists the valid names."""


class DataError(DatadistillError):
    """A dataset source is missing, malformed or inconsistent; the message names the file."""


class ConfigError(DatadistillError):
    """An invalid configuration value or an unknown configuration key."""


class FormatError(DatadistillError):
    """A distilled-set directory is missing files or does not follow the format."""


class RunDirError(DatadistillError):
    """A run directory exists and would be overwritten, or cannot be used."""


class DivergenceError(DatadistillError):
    """An optimisation produced a NaN or infinite loss; the last good checkpoint is kept."""


class SlowPathWarning(RuntimeWarning):
    """A run is about to take a path that is much slower on this machine than an equivalent one
    (bf16 autocast on a CPU without bf16 kernels). The CLI prints it as one line."""
