"""Put the BIG-bench 1.0.0 source archive (sha256-checked) where the project reads it, without installing it.

    python -m scripts.fetch_bigbench [DEST_DIR]              # from PyPI; default DEST_DIR $IAPT_CACHE/downloads
    python -m scripts.fetch_bigbench --from PATH [DEST_DIR]  # from a copy you have

`pip download` cannot fetch it: pip must build its metadata, which declares a direct-URL dependency that
PyPI forbids. The archive (358 MB) holds Natural Instructions v1 and the BIG-bench tasks; its task files are
read straight from the tarball, and the package is never installed (it pulls heavy dependencies).

Since 2026-12-06 PyPI no longer lists bigbench 1.0.0 (only 0.0.1). When it cannot be fetched this script says
so and exits 0, so that `make setup` (and `make test`, which needs no archive) go on; the tasks that read it
then refuse with the same advice (docs/data.md, "When the BIG-bench archive is missing").
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

FILENAME = "bigbench-1.0.0.tar.gz"
SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
INDEX = "https://pypi.org/simple/bigbench/"
NEEDED_BY = "Table 2 (Natural Instructions v1, BBH-style tasks) and Table 1's FEVER and MultiEmo"


def pypi_url() -> str | None:
    """The archive's download address on PyPI, or None when PyPI does not list it or cannot be reached."""
    req = urllib.request.Request(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        print(f"note: could not read {INDEX}: {e}", file=sys.stderr)
        return None
    return next((f["url"] for f in files if f["filename"] == FILENAME), None)


def copy_checked(chunks, dest: Path) -> bool:
    """Write the chunks to dest (through a partial file, renamed only when the sha256 matches; removed when the
    chunks break off or fail the check)."""
    tmp = dest.with_suffix(".partial")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != SHA256:
        tmp.unlink()
        print(f"error: this {FILENAME} failed its sha256 check (expected {SHA256})", file=sys.stderr)
        return False
    tmp.rename(dest)
    return True


def read_chunks(stream):
    while chunk := stream.read(1 << 20):
        yield chunk


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest_dir", nargs="?", type=Path,
                        default=Path(os.environ.get("IAPT_CACHE", Path.home() / ".cache/iapt")) / "downloads")
    parser.add_argument("--from", dest="source", type=Path, metavar="PATH",
                        help=f"a copy of {FILENAME} to check and copy instead of downloading")
    args = parser.parse_args(argv)
    dest = args.dest_dir / FILENAME
    if dest.exists():
        print(f"{dest} already there")
        return 0
    args.dest_dir.mkdir(parents=True, exist_ok=True)
    if args.source is not None:
        if not args.source.is_file():
            print(f"error: {args.source} is not a file", file=sys.stderr)
            return 1
        with open(args.source, "rb") as f:
            ok = copy_checked(read_chunks(f), dest)
        print(f"copied to {dest}" if ok else "nothing copied")
        return 0 if ok else 1
    url = pypi_url()
    if url is None:
        print(f"warning: PyPI does not serve {FILENAME} (it has not listed bigbench 1.0.0 since 2026-12-06), so "
              f"{NEEDED_BY} cannot be rebuilt here; everything else, `make test` included, works without it. "
              f"With a copy: python -m scripts.fetch_bigbench --from PATH", file=sys.stderr)
        return 0
    try:
        with urllib.request.urlopen(url, timeout=600) as r:
            ok = copy_checked(read_chunks(r), dest)
    except (urllib.error.URLError, OSError) as e:     # a broken download must not stop setup (nor `make test`)
        print(f"warning: downloading {url} failed ({e}); {NEEDED_BY} need it; the next `make setup` tries again",
              file=sys.stderr)
        return 0
    print(f"downloaded {dest}" if ok else "try again")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
