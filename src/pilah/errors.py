"""One error base for everything Pilah reports to people.

Each error has a stable `code`: the CLI maps it to an exit status, the API to an HTTP status and a JSON body, the
app to a message in the user's language. Nothing parses error text. Every error class takes `(message, code, ...)`
in that order.
"""

from __future__ import annotations

from typing import ClassVar


class PilahError(Exception):
    """Base class: `code` is stable for programs and translations; the message is for people."""

    code = "error"
    exit_status = 1  # the CLI's: 1 for a failure, 2 for wrong usage
    http_status = 500

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(PilahError):
    """The command or its arguments cannot work as given."""

    code = "usage"
    exit_status = 2
    http_status = 422


class ConfigError(UsageError):
    """A config file or override names an unknown key, or a value of the wrong type or choice."""

    code = "config"


class DataError(PilahError):
    """The data folder cannot be used (missing, no class folders, no images)."""

    code = "data"


class RunError(PilahError):
    """A run folder is missing, incomplete, or would be overwritten."""

    code = "run"


class WeightsError(PilahError):
    """The backbone's weights cannot be loaded (no internet, missing file)."""

    code = "weights"


class ModelNotFoundError(UsageError):
    """No model at the given path, and no bundled model to fall back on."""

    code = "model_not_found"
    http_status = 503


class SelfCheckError(PilahError):
    """No runtime gives this model's reference answers on this processor: Pilah refuses to serve wrong ones."""

    code = "self_check_failed"
    http_status = 503


class ServeError(PilahError):
    """A server that cannot start: the Ray Serve replicas failed to load or check the model, or died starting."""

    code = "deploy_failed"


class ExportError(UsageError):
    """An export that cannot be made as asked (format, quantization, missing calibration images)."""

    code = "export"


class GuidanceError(UsageError):
    """A guidance pack that is missing, unreadable or invalid, or a region Pilah has no pack for."""

    code = "guidance"


class CorrectionError(PilahError):
    """A correction that cannot be kept: an unknown class or field, or a full folder (a photo that is too big or
    no image is an `ImageError`, as anywhere else)."""

    code = "correction"
    HTTP_STATUS: ClassVar[dict[str, int]] = {"corrections_full": 507}  # others: 422

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message, code)
        self.http_status = self.HTTP_STATUS.get(self.code, 422)


UNDECODABLE = ("not_an_image", "unsupported")  # image codes for bytes we cannot decode, not images we refuse


def image_http_status(code: str) -> int:
    """415 for bytes that are no image we decode, 413 for a file over the upload limit, 422 for an image we refuse
    (too many pixels, corrupt, ...)."""
    return 415 if code in UNDECODABLE else 413 if code == "too_large_upload" else 422


class ImageError(PilahError):
    """An input that is not an image Pilah can classify; `code` says why (`empty`, `corrupt`, `too_large`, ...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, code)
        self.http_status = image_http_status(code)
