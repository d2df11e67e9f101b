"""Download the BIG-bench 1.0.0 source archive from PyPI (sha256-checked) without installing it.

    python -m scripts.fetch_bigbench [DEST_DIR]      # default $IAPT_CACHE/downloads

`pip download` cannot fetch it: pip must build its metadata, which declares a direct-URL dependency that
PyPI forbids. The archive (358 MB) holds Natural Instructions v1 and the BIG-bench tasks; its task files are
read straight from the tarball, and the package is never installed (it pulls heavy dependencies).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request
from pathlib import Path

FILENAME = "bigbench-1.0.0.tar.gz"
SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
INDEX = "https://pypi.org/simple/bigbench/"


def main() -> int:
    dest_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.environ.get("IAPT_CACHE", Path.home() / ".cache/iapt")) / "downloads"
    dest = dest_dir / FILENAME
    if dest.exists():
        print(f"{dest} already there")
        return 0
    dest_dir.mkdir(parents=True, exist_ok=True)
    req = urllib.request.Request(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
    url = next(f["url"] for f in files if f["filename"] == FILENAME)
    tmp = dest.with_suffix(".partial")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=600) as r, open(tmp, "wb") as out:
        while chunk := r.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != SHA256:
        tmp.unlink()
        print(f"error: {FILENAME} failed its sha256 check; try again", file=sys.stderr)
        return 1
    tmp.rename(dest)
    print(f"downloaded {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
