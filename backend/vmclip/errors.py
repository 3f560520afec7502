"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class VmclipError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class InputError(VmclipError):
    """Bad input file, argument or value."""


class MissingAssetError(VmclipError):
    """An optional model file (CLIP, SMPL, LWG, MotionCLIP checkpoint) is not where it was looked for."""
