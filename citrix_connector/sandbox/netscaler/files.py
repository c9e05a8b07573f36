"""``systemfile``: upload, download, list and delete files (reference §2.2)."""

from __future__ import annotations

import base64
import binascii
import posixpath
from typing import TYPE_CHECKING, Any

from ..httpserver import Response
from .errors import Fail
from .model import KNOWN_DIRS, File, norm_dir, resolve
from .pki import ctime
from .protocol import Ctx, check_fields, listing, ok, opt_str, req_str

if TYPE_CHECKING:
    from .server import NetScalerSimulator

FILENAME_MAX = 63


FILELOCATION_MAX = 127


def check_filename(filename: str) -> None:
    if len(filename) > FILENAME_MAX:
        raise Fail(400, 1106, f"filename, {FILENAME_MAX}")
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        raise Fail(400, 1097, "filename")


def systemfile(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    part = ctx.part
    if method == "POST" and action is None:
        check_fields(body, {"filename", "filelocation", "filecontent", "fileencoding"})
        filename = req_str(body, "filename")
        location = req_str(body, "filelocation")
        content = req_str(body, "filecontent")
        encoding = opt_str(body, "fileencoding") or "BASE64"
        check_filename(filename)
        if len(location) > FILELOCATION_MAX:
            raise Fail(400, 1106, "filelocation")
        if encoding.upper() != "BASE64":
            raise Fail(400, 1097, "fileencoding")
        try:
            data = base64.b64decode("".join(content.split()), validate=True)
        except (binascii.Error, ValueError):
            raise Fail(400, 1097, "filecontent") from None
        path = resolve(part, f"{norm_dir(location)}/{filename}", output=True)
        if path in part.files:
            raise Fail(409, 1642, path)
        now = sim.clock()
        part.files[path] = File(data, now, now)
        return ok(ctx, 201, empty=True)
    if method == "GET":
        where = ctx.args.get("filelocation")
        wanted = ctx.args.get("filename") or name
        if not where:
            raise Fail(400, 1095, "filelocation")
        directory = norm_dir(where)
        if wanted is not None:
            check_filename(wanted)
            path = resolve(part, f"{directory}/{wanted}", output=False)
            entry = part.files.get(path)
            if entry is None:
                raise no_file(sim, path)
            entry.atime = sim.clock()
            return listing(ctx, "systemfile", [file_view(path, entry, content=True)])
        resolve(part, f"{directory}/x", output=False)
        items: list[dict[str, Any]] = []
        subdirs: set[str] = set()
        for path, entry in sorted(part.files.items()):
            parent = posixpath.dirname(path)
            if parent == directory:
                items.append(file_view(path, entry, content=False))
            elif parent.startswith(directory + "/"):
                subdirs.add(parent[len(directory) + 1 :].split("/")[0])
        known = directory in KNOWN_DIRS or directory == part.ssl_dir or subdirs or items
        if not known:
            raise no_file(sim, directory)
        for sub in sorted(subdirs):
            items.append({"filename": sub, "filelocation": directory, "filemode": ["DIRECTORY"]})
        return listing(ctx, "systemfile", items)
    if method == "DELETE":
        where = ctx.args.get("filelocation")
        wanted = name or ctx.args.get("filename")
        if not wanted:
            raise Fail(400, 1095, "filename")
        if not where:
            raise Fail(400, 1095, "filelocation")
        check_filename(wanted)
        path = resolve(part, f"{norm_dir(where)}/{wanted}", output=False)
        if path not in part.files:
            raise no_file(sim, path)
        del part.files[path]
        return ok(ctx)
    if action is not None:
        raise Fail(400, 1240, action)
    raise Fail(405, 1237)


def no_file(sim: NetScalerSimulator, path: str) -> Fail:
    if sim.systemfile_missing_errorcode == 3441:
        return Fail(404, 3441, path)
    return Fail(404, 258, path)


def file_view(path: str, entry: File, *, content: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "filename": posixpath.basename(path),
        "filelocation": posixpath.dirname(path),
        "filesize": str(len(entry.data)),
        "filemodifiedtime": ctime(entry.mtime),
        "fileaccesstime": ctime(entry.atime),
    }
    if content:
        view["filecontent"] = base64.b64encode(entry.data).decode("ascii")
        view["fileencoding"] = "BASE64"
    return view
