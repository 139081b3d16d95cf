"""THE policy decision point: the only code that says yes or no to an access.

Every route and command asks `decide`; anything no rule allows is denied. The access issue adds
users, grants, DUO matching and jurisdiction rules here; the catalog's rules are below.
"""

from __future__ import annotations

from genecommons.access.models import Action, Decision, Resource, Subject, SubjectKind

METADATA_KINDS = frozenset({"study", "dataset"})


def decide(subject: Subject, action: Action, resource: Resource) -> Decision:
    """Whether `subject` may perform `action` on `resource`, and why."""
    if subject.kind is SubjectKind.OPERATOR:
        return Decision(
            True,
            ("The node operator administers the catalog from the command line.",),
            ("节点运维人员可通过命令行管理目录。",),
            rule="operator",
        )
    if action is Action.READ_METADATA and resource.kind in METADATA_KINDS:
        if resource.public:
            return Decision(
                True,
                ("Study and dataset metadata are public.",),
                ("研究和数据集的元数据是公开的。",),
                rule="public-metadata",
            )
        return Decision(
            False,
            ("This study's metadata is not public.",),
            ("该研究的元数据未公开。",),
            rule="private-metadata",
        )
    if action is Action.READ_INDIVIDUAL_RECORDS:
        return Decision(
            False,
            (
                "Individual-level records are not open: sign in with an account that holds an "
                "approved access grant for the dataset.",
            ),
            ("个体水平记录不公开：请使用已获得该数据集访问授权的账号登录。",),
            rule="individual-records-controlled",
        )
    return Decision(
        False,
        ("No rule allows this action; access is denied by default.",),
        ("没有规则允许此操作；默认拒绝访问。",),
        rule="default-deny",
    )
