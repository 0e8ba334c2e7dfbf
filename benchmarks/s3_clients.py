"""Which S3 client for the blob store: boto3, s3fs or obstore, on whole-object puts and gets.

The blob store only ever puts and gets whole objects (a chunk of ~100 KiB, a checkpoint of a few
MiB to ~100 MiB), so that is what is timed, each client on its own prefix of the same server,
interleaved per repetition. s3fs pins botocore through aiobotocore and cannot share an
environment with the project's boto3, so this runs in a separate virtual environment:

    python3 -m venv /tmp/s3venv && /tmp/s3venv/bin/pip install s3fs obstore numpy \\
        "boto3==<the botocore aiobotocore accepts>"
    source scripts/services.sh
    /tmp/s3venv/bin/python benchmarks/s3_clients.py --repeats 15

Writes ``docs/benchmarks/s3_clients.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
SIZES = {"100 KiB (a chunk)": 100 << 10, "8 MiB (a checkpoint)": 8 << 20, "64 MiB": 64 << 20}


def _clients(endpoint: str, bucket: str, access: str, secret: str) -> dict:
    import boto3
    import obstore
    import s3fs
    from obstore.store import S3Store

    b3 = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access, aws_secret_access_key=secret,
        region_name="us-east-1",
    )  # fmt: skip
    fs = s3fs.S3FileSystem(key=access, secret=secret, endpoint_url=endpoint)
    ob = S3Store(
        bucket, endpoint=endpoint, access_key_id=access, secret_access_key=secret,
        region="us-east-1", client_options={"allow_http": True},
    )  # fmt: skip
    return {
        "boto3": (
            lambda k, d: b3.put_object(Bucket=bucket, Key=k, Body=d),
            lambda k: b3.get_object(Bucket=bucket, Key=k)["Body"].read(),
        ),
        "s3fs": (
            lambda k, d: fs.pipe_file(f"{bucket}/{k}", d),
            lambda k: fs.cat_file(f"{bucket}/{k}"),
        ),
        "obstore": (
            lambda k, d: obstore.put(ob, k, d),
            lambda k: bytes(obstore.get(ob, k).bytes()),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--endpoint", default=os.environ.get("LURE_TEST_S3_ENDPOINT"))
    parser.add_argument("--bucket", default="lure-test")
    args = parser.parse_args()
    access = os.environ.get("LURE_TEST_S3_ACCESS_KEY", os.environ.get("AWS_ACCESS_KEY_ID"))
    secret = os.environ.get("LURE_TEST_S3_SECRET_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY"))
    clients = _clients(args.endpoint, args.bucket, access, secret)
    times: dict[tuple[str, str, str], list[float]] = {}
    prefix = f"client-bench-{uuid.uuid4().hex[:8]}"
    for size_name, size in SIZES.items():
        data = os.urandom(size)
        for repeat in range(args.repeats):
            for name, (put, get) in clients.items():
                key = f"{prefix}/{name}/{size}/{repeat}"
                started = time.perf_counter()
                put(key, data)
                middle = time.perf_counter()
                assert get(key) == data
                ended = time.perf_counter()
                times.setdefault((size_name, name, "put"), []).append(middle - started)
                times.setdefault((size_name, name, "get"), []).append(ended - middle)
    lines = [
        f"# S3 clients on whole-object puts and gets\n\n{args.repeats} interleaved repetitions "
        "per size, SeaweedFS `weed mini` on the same machine, median ms (min–max).\n",
        "| object | operation | " + " | ".join(clients) + " |",
        "|---|---|" + "---|" * len(clients),
    ]
    for size_name in SIZES:
        for operation in ("put", "get"):
            cells = []
            for name in clients:
                ms = [1000 * t for t in times[size_name, name, operation]]
                cells.append(f"{statistics.median(ms):.1f} ({min(ms):.1f}–{max(ms):.1f})")
            lines.append(f"| {size_name} | {operation} | " + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "s3_clients.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
