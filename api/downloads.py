"""Files sent as downloads (exports, filled forms): written in a private temporary folder that goes once sent."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.responses import FileResponse
from starlette.background import BackgroundTask


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A private temporary folder to write a download in; removed at once when the work in it fails, else by
    :func:`attachment` after the file is sent."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def attachment(folder: Path, path: Path, media_type: str) -> FileResponse:
    """``path`` (inside ``folder``) as an attachment; ``folder`` is removed once the answer is sent."""
    return FileResponse(path, media_type=media_type, filename=path.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
