"""Build data/cifar10-sample.tar.gz, the small real CIFAR-10 sample shipped with cnnlab.

Takes the first N training and M test JPEGs of each class from the full JPEG copy
(default ../shared/datasets/cifar10-jpg.tar.gz), byte for byte, and writes them in
the same train/<class>/ and test/<class>/ layout. The output is deterministic
(sorted members, fixed times and owners), so rebuilding gives the same file.

    python scripts/make_sample.py [SOURCE] [--train-per-class 1000] [--test-per-class 200]
"""

from __future__ import annotations

import argparse
import gzip
import io
import tarfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]


def build(source: Path, out: Path, train_per_class: int, test_per_class: int) -> int:
    limits = {"train": train_per_class, "test": test_per_class}
    chosen: dict[str, bytes] = {}
    with tarfile.open(source, "r:*") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) != 3 or parts[0] not in limits:
                continue
            if int(PurePosixPath(parts[2]).stem) < limits[parts[0]]:
                chosen[member.name] = tar.extractfile(member).read()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(chosen):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(chosen[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(chosen[name]))
    with open(out, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
        gz.write(buffer.getvalue())
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path,
                        default=ROOT.parent / "shared/datasets/cifar10-jpg.tar.gz")
    parser.add_argument("--out", type=Path, default=ROOT / "data/cifar10-sample.tar.gz")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    args = parser.parse_args()
    count = build(args.source, args.out, args.train_per_class, args.test_per_class)
    print(f"wrote {args.out} ({count} images, {args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
