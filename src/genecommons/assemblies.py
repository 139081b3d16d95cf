"""Primary contigs of the reference assemblies and their lengths (NCBI GenBank assembly
reports: GRCh37.p13 GCA_000001405.14, GRCh38.p14 GCA_000001405.29, T2T-CHM13v2.0
GCA_009914755.4). Names are accepted with or without the "chr" prefix; MT and chrM are one."""

from __future__ import annotations

NAMES = [*(str(i) for i in range(1, 23)), "X", "Y", "MT"]

GRCH37 = [
    249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663, 146364022,
    141213431, 135534747, 135006516, 133851895, 115169878, 107349540, 102531392, 90354753,
    81195210, 78077248, 59128983, 63025520, 48129895, 51304566, 155270560, 59373566, 16569,
]  # fmt: skip
GRCH38 = [
    248956422, 242193529, 198295559, 190214555, 181538259, 170805979, 159345973, 145138636,
    138394717, 133797422, 135086622, 133275309, 114364328, 107043718, 101991189, 90338345,
    83257441, 80373285, 58617616, 64444167, 46709983, 50818468, 156040895, 57227415, 16569,
]  # fmt: skip
T2T_CHM13 = [
    248387328, 242696752, 201105948, 193574945, 182045439, 172126628, 160567428, 146259331,
    150617247, 134758134, 135127769, 133324548, 113566686, 101161492, 99753195, 96330374,
    84276897, 80542538, 61707364, 66210255, 45090682, 51324926, 154259566, 62460029, 16569,
]  # fmt: skip

ASSEMBLIES: dict[str, dict[str, int]] = {
    "GRCh37": dict(zip(NAMES, GRCH37, strict=True)),
    "GRCh38": dict(zip(NAMES, GRCH38, strict=True)),
    "T2T-CHM13": dict(zip(NAMES, T2T_CHM13, strict=True)),
}


def canonical(contig: str) -> str:
    """The contig's name without 'chr' ('chrM' -> 'MT')."""
    name = contig[3:] if contig.lower().startswith("chr") else contig
    return "MT" if name.upper() in ("M", "MT") else name.upper() if name in ("x", "y") else name


def contig_length(assembly: str, contig: str) -> int | None:
    """The length of a primary contig of `assembly`, or None if it is not one of them."""
    return ASSEMBLIES.get(assembly, {}).get(canonical(contig))
