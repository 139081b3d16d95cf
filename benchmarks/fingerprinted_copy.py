"""Benchmark: building a recipient's fingerprinted copy of a large archived VCF, beside peers that
make one comparable pass over the same file, in one run: peak memory and time.

1. The copy build as `genecommons fingerprint build-pending` runs it, in a process of its own:
   two streaming passes over the Crypt4GH-decrypted archived object (the keyed plan, then the
   marks, BGZF, Crypt4GH for the archive key and the tabix index), stored in the node's store.
2. `bcftools view -Oz` re-compressing the same VCF.gz (one pass: inflate, parse, deflate).
3. `crypt4gh encrypt` of the same VCF.gz (one pass: encryption only).

The VCF (default 1 GB of text: 2,000 samples, phased diploid calls copied from a few founder
haplotypes with noise, so that sites are linked as in a cohort and compress as such) is
generated into --workdir and removed afterwards (--keep keeps it). Peak RSS is each process's
own maximum resident set (`/usr/bin/time`), including the interpreter (about 100 MB for
Python with numpy); the wall clock swings with the machine's load, so CPU time is shown too.

    .venv/bin/python -m benchmarks.fingerprinted_copy [--gb 1.0] [--samples 2000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from genecommons.archive.bgzf import BgzfWriter
from genecommons.archive.crypt import BodyEncryptor
from genecommons.archive.keys import format_public_key
from genecommons.config import Settings

ACCESSION = "GCF00000001"
OBJECT_KEY = f"{ACCESSION}/object.c4gh"
SITES_PER_BLOCK = 2000
_CELL = np.array([b"0|0\t", b"0|1\t", b"1|0\t", b"1|1\t"], dtype="S4")


def write_vcf(path: Path, *, samples: int, gigabytes: float, seed: int = 3) -> tuple[int, int]:
    """A bgzipped VCF of about `gigabytes` of text (zlib level 6 as bgzip writes); its sites
    and text bytes."""
    rng = np.random.default_rng(seed)
    line = 4 * samples + 40
    sites = int(gigabytes * 1e9 / line)
    founders = rng.random((8, SITES_PER_BLOCK)) < 0.3
    text = 0
    with path.open("wb") as out:
        writer = BgzfWriter(out, level=6)  # type: ignore[arg-type]
        header = (
            "##fileformat=VCFv4.3\n##contig=<ID=chr22,length=50818468>\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
            + "\t".join(f"S{i:05d}" for i in range(samples))
            + "\n"
        ).encode()
        writer.write(header)
        text += len(header)
        step = 50_000_000 // (sites + 1)
        for start in range(0, sites, SITES_PER_BLOCK):
            rows = min(SITES_PER_BLOCK, sites - start)
            which = rng.integers(0, 8, size=2 * samples)
            haplotypes = founders[which][:, :rows] ^ (rng.random((2 * samples, rows)) < 0.01)
            codes = np.ascontiguousarray((haplotypes[0::2] * 2 + haplotypes[1::2]).T)
            cells = np.ascontiguousarray(_CELL[codes]).view(np.uint8).reshape(rows, 4 * samples)
            cells[:, -1] = ord("\n")
            for j in range(rows):
                record = f"chr22\t{(start + j + 1) * step}\t.\tA\tG\t.\tPASS\t.\tGT\t".encode()
                record += cells[j].tobytes()
                writer.write(record)
                text += len(record)
            founders = np.roll(founders, 17, axis=1)
        writer.close()
    return sites, text


def archive(settings: Settings, vcf: Path) -> int:
    """The VCF encrypted for the node's archive key in its store; the body's size."""
    from genecommons.archive import keys_and_store
    from genecommons.fingerprint.secret import fingerprint_secret

    keys = keys_and_store.archive_keys(settings, create=True)
    fingerprint_secret(settings, create=True)
    encryptor = BodyEncryptor()
    (settings.data_dir / "header.bin").write_bytes(encryptor.header_for([keys.public], sender=keys))

    def chunks():  # type: ignore[no-untyped-def]
        with vcf.open("rb") as source:
            while chunk := source.read(4 << 20):
                yield bytes(encryptor.update(chunk))
        yield bytes(encryptor.finish())

    return keys_and_store.object_store(settings).put(OBJECT_KEY, chunks())


def child(data_dir: Path, body_size: int) -> None:
    """The build, in this process: print its figures as JSON."""
    from genecommons.archive.recipient_copies import Source
    from genecommons.fingerprint import copies

    settings = Settings(data_dir=data_dir, environment="test")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    source = Source(
        file_id=1,
        accession=ACCESSION,
        name="cohort.vcf.gz",
        object_key=OBJECT_KEY,
        header=(data_dir / "header.bin").read_bytes(),
        body_size=body_size,
    )
    start, cpu = time.perf_counter(), time.process_time()
    values = copies.build_copy(
        settings,
        source=source,
        dataset="GCD00000001",
        recipient="r1@example.org",
        copy_id=f"{ACCESSION}-fp-{int(time.time() * 1e6) % 16**16:016x}",
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "peak_mb": peak / 1024,
                "before_mb": base / 1024,
                "marked": values["marked_positions"],
                "copy_bytes": values["plain_size"],
            }
        )
    )


def timed(
    command: list[str], *, stdin: object = None, stdout: object = subprocess.PIPE
) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak RSS (MB) of a command (GNU time), and its output."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %M %U %S", *command],
        stdin=stdin,  # type: ignore[arg-type]
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    found = re.search(r"TIME (\d+) ([\d.]+) ([\d.]+)", done.stderr)
    assert found, done.stderr
    peak, user, system = int(found[1]), float(found[2]), float(found[3])
    return wall, user + system, peak / 1024, done.stdout or ""


def main() -> None:
    """Generate and archive the VCF, build a copy, run the peers, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--body-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=Path(".bench-data/fingerprinted-copy"))
    parser.add_argument("--gb", type=float, default=1.0, help="VCF text, in GB")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.body_size)
        return
    work = args.workdir.resolve()
    made = work / "made.json"
    wanted = {"gb": args.gb, "samples": args.samples}
    kept = json.loads(made.read_text()) if made.exists() else {}
    if {k: kept.get(k) for k in wanted} != wanted:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    try:
        vcf = work / "cohort.vcf.gz"
        settings = Settings(data_dir=work / "node", environment="test")
        if made.exists():  # kept from a run with the same sizes (--keep)
            sites, text, body_size = kept["sites"], kept["text"], kept["body_size"]
            shutil.rmtree(settings.data_dir / "archive" / ACCESSION / "copies", ignore_errors=True)
        else:
            print(f"writing a VCF of {args.gb} GB of text, {args.samples} samples …", flush=True)
            sites, text = write_vcf(vcf, samples=args.samples, gigabytes=args.gb)
            body_size = archive(settings, vcf)
            made.write_text(
                json.dumps({**wanted, "sites": sites, "text": text, "body_size": body_size})
            )
        print(
            f"{sites:,} sites x {args.samples:,} samples: {text / 1e9:.2f} GB of text, "
            f"{vcf.stat().st_size / 1e6:.0f} MB bgzipped, archived; building …",
            flush=True,
        )
        wall, cpu, peak, out = timed(
            [
                sys.executable,
                "-m",
                "benchmarks.fingerprinted_copy",
                "--child",
                str(settings.data_dir),
                "--body-size",
                str(body_size),
            ]
        )
        figures = json.loads(out.strip().splitlines()[-1])
        rows = [("genecommons copy build (2 passes)", wall, cpu, peak)]
        bcftools = shutil.which("bcftools")
        if bcftools:
            command = [bcftools, "view", "-Oz", "-o", str(work / "peer.vcf.gz"), str(vcf)]
            rows.append(("bcftools view -Oz (1 pass)", *timed(command)[:3]))
        public = work / "recipient.pub"
        from genecommons.archive.keys import generate_key_pair

        public.write_text(format_public_key(generate_key_pair().public))
        crypt4gh = Path(sys.executable).with_name("crypt4gh")
        command = [str(crypt4gh), "encrypt", "--recipient_pk", str(public)]
        with vcf.open("rb") as source, (work / "peer.c4gh").open("wb") as sink:
            rows.append(
                ("crypt4gh encrypt (1 pass)", *timed(command, stdin=source, stdout=sink)[:3])
            )
        print(
            f"copy: {figures['marked']:,} marked positions, {figures['copy_bytes'] / 1e6:.0f} MB "
            f"BGZF; inside the builder {figures['wall']:.1f} s wall, {figures['cpu']:.1f} s CPU, "
            f"RSS {figures['before_mb']:.0f} MB before the build"
        )
        print(f"  {'':36} {'wall':>8} {'CPU':>8} {'text MB/s CPU':>14} {'peak RSS':>10}")
        for name, seconds, cpu_seconds, rss in rows:
            print(
                f"  {name:36} {seconds:7.1f}s {cpu_seconds:7.1f}s "
                f"{text / 1e6 / cpu_seconds:14.1f} {rss:8.0f} MB"
            )
        ours = rows[0]
        for name, _, cpu_seconds, rss in rows[1:]:
            print(
                f"  genecommons / {name}: CPU time {ours[2] / cpu_seconds:.2f}x, "
                f"peak RSS {ours[3] / rss:.2f}x"
            )
        print(
            "  goal: peak RSS bounded by a block of sites, not the file (the build before: "
            "3.7 GB for 7 MB of VCF.gz)"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
