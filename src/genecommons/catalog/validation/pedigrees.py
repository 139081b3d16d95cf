"""The pedigree rules across individuals: parents' sex and study, and no cycle of ancestry."""

from __future__ import annotations

from genecommons.catalog.validation.context import ValidationContext
from genecommons.catalog.validation.plan import Target
from genecommons.catalog.validation.problems import _p


class PedigreeRules(ValidationContext):
    """Checks the pedigree the individuals of a submission and the catalog form."""

    def _check_pedigrees(self) -> None:
        nodes = self.plan.nodes.get("individuals", [])
        parents: dict[str, list[str]] = {}

        def ident(target: Target) -> str:
            if target.node is not None:
                return f"new:{target.node.namespace}/{target.node.record.alias}"
            assert target.existing is not None
            return target.existing.accession

        for node in nodes:
            me = f"new:{node.namespace}/{node.record.alias}"
            if node.existing is not None:
                parents.setdefault(node.existing.accession, [])
            parents[me] = []
            for column, forbidden in (("father", "female"), ("mother", "male")):
                for target in node.refs.get(column, []):
                    parents[me].append(ident(target))
                    sex = (
                        getattr(target.node.record, "sex", None)
                        if target.node
                        else target.existing.doc.get("sex")
                        if target.existing
                        else None
                    )
                    if sex == forbidden:
                        self.add(
                            _p(
                                "pedigree.sex",
                                f"The {column} is recorded as {sex}.",
                                f"{'父亲' if column == 'father' else '母亲'}的性别记录为"
                                f"{'女' if sex == 'female' else '男'}。",
                                node.row,
                                column,
                                getattr(node.record, column),
                            )
                        )
                    if target.namespace != node.namespace:
                        self.add(
                            _p(
                                "pedigree.study",
                                "Parents must be in the same study.",
                                "父母必须属于同一研究。",
                                node.row,
                                column,
                                getattr(node.record, column),
                            )
                        )
            for target_list in node.refs.values():
                for target in target_list:
                    if target.existing is not None and target.existing.entity == "individuals":
                        parents.setdefault(
                            target.existing.accession,
                            [
                                v
                                for v in (
                                    target.existing.doc.get("father"),
                                    target.existing.doc.get("mother"),
                                )
                                if v
                            ],
                        )
        by_id = {f"new:{n.namespace}/{n.record.alias}": n for n in nodes}
        state: dict[str, int] = {}
        reported: set[str] = set()
        for start in parents:
            if state.get(start):
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            path: list[str] = []
            while stack:
                current, index = stack.pop()
                if index == 0:
                    state[current] = 1
                    path.append(current)
                kids = parents.get(current, [])
                if index < len(kids):
                    stack.append((current, index + 1))
                    nxt = kids[index]
                    if state.get(nxt) == 1:
                        cycle = path[path.index(nxt) :]
                        culprit = next((by_id[c] for c in cycle if c in by_id), None)
                        if culprit is not None and culprit.record.alias not in reported:
                            reported.add(culprit.record.alias)
                            names = " -> ".join(c.split("/")[-1] for c in [*cycle, nxt])
                            self.add(
                                _p(
                                    "pedigree.cycle",
                                    f"The pedigree has a cycle: {names}.",
                                    f"家系关系存在循环：{names}。",
                                    culprit.row,
                                    "father",
                                    culprit.record.alias,
                                    "An individual cannot be their own ancestor / 个体不能是自己的祖先",
                                )
                            )
                    elif not state.get(nxt):
                        stack.append((nxt, 0))
                else:
                    state[current] = 2
                    path.pop()
