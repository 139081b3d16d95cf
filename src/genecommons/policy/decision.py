"""THE policy decision point: the only code that says yes or no to an access.

Every route and command asks `decide`; anything no rule allows is denied. The access issue adds
users, grants, DUO matching and jurisdiction rules here; the catalog's rules are below.

What a caller may not see does not exist for them: `visible` says whether a caller may know
that a record exists, and `require(..., missing=)` answers the refusal of a record the caller
may not see with the very error a missing record gets. Every refusal raised here carries a
`Refusal` that the one error mapping of the app (and of the CLI) writes to the audit log,
whatever the answer says.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from genecommons.errors import AccessDeniedError, NotFoundError, Refusal
from genecommons.policy.models import (
    Action,
    CredentialKind,
    Decision,
    Resource,
    Role,
    Subject,
    SubjectKind,
)

METADATA_KINDS = frozenset({"study", "dataset"})
# roles that look after the catalog's records (the access issue adds grants for researchers)
STEWARDS = (Role.DATA_STEWARD, Role.ADMIN)
# who, beyond a record's owner and reviewers, may know that a record of a kind exists, and the
# action a token's scopes must include for them to (a kind not named: owner and reviewers only)
WATCHERS: dict[str, tuple[Action, tuple[Role, ...]]] = {
    "study": (Action.READ_METADATA, STEWARDS),
    "dataset": (Action.READ_METADATA, STEWARDS),
    "file": (Action.READ_METADATA, STEWARDS),
    "individual": (Action.READ_INDIVIDUAL_RECORDS, STEWARDS),
    "sample": (Action.READ_INDIVIDUAL_RECORDS, STEWARDS),
    "request": (Action.READ_REQUEST, (Role.ADMIN, Role.AUDITOR)),
    "grant": (Action.READ_REQUEST, (Role.ADMIN, Role.AUDITOR)),
    "token": (Action.MANAGE_TOKENS, (Role.ADMIN,)),
    # an account (its owner sees it too), a committee's roster (its members see it too), and how
    # an institution was verified (its public description is for anyone)
    "user": (Action.MANAGE_USERS, (Role.ADMIN,)),
    "dac_members": (Action.MANAGE_DACS, (Role.ADMIN,)),
    "institution_verification": (Action.VERIFY_INSTITUTIONS, (Role.ADMIN,)),
}


def decide(subject: Subject, action: Action, resource: Resource) -> Decision:
    """Whether `subject` may perform `action` on `resource`, and why."""
    if subject.kind is SubjectKind.OPERATOR:
        return Decision(
            True,
            ("The node operator administers the catalog from the command line.",),
            ("节点运维人员可通过命令行管理目录。",),
            rule="operator",
        )
    if subject.kind is SubjectKind.USER:
        decision = _user_rule(subject, action, resource)
        if decision is not None:
            return decision
    if action in (Action.READ_AGGREGATES, Action.READ_RECORDS):
        if subject.scopes is not None and str(action) not in subject.scopes:
            subject = Subject.anonymous()  # outside its scopes a token has what anyone has
        return _data_rule(subject, action, resource)
    if action is Action.READ_AUDIT_PROOFS and resource.kind == "audit":
        return Decision(
            True,
            ("Tree heads and proofs are public so that anyone can watch the log.",),
            ("树头与证明公开，任何人都可监督日志。",),
            rule="audit-proofs-public",
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
    if action is Action.READ_AUDIT:
        return Decision(
            False,
            ("The audit entries and alerts are for auditors and administrators.",),
            ("审计条目和预警仅供审计人员和系统管理员查看。",),
            rule="auditors-only",
        )
    if action is Action.READ_METRICS:
        return Decision(
            False,
            (
                "The node's metrics are for its operators: send the token of an administrator "
                f"(an API token with the {Action.READ_METRICS} scope), or scrape from an "
                "address GENECOMMONS_METRICS_ALLOW_IPS lists.",
            ),
            (
                f"节点指标仅供运维人员查看：请发送系统管理员的令牌（具有 {Action.READ_METRICS} 权限范围的 API "
                "令牌），或从 GENECOMMONS_METRICS_ALLOW_IPS 所列地址抓取。",
            ),
            rule="operators-only",
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


def require(
    subject: Subject, action: Action, resource: Resource, *, missing: NotFoundError | None = None
) -> Decision:
    """`decide`, raising AccessDeniedError (with the reasons) when the answer is no; with
    `missing` (the error a record that does not exist gets), a record the subject may not see
    is refused with that error instead. Either carries the refusal for the audit log."""
    decision = decide(subject, action, resource)
    if not decision.allowed:
        record = refusal(subject, action, resource, rule=decision.rule)
        if missing is not None and not visible(subject, resource):
            raise hidden(missing, record)
        raise AccessDeniedError(
            " ".join(decision.reasons),
            message_zh="".join(decision.reasons_zh),
            details={"rule": decision.rule},
            refusal=record,
        )
    return decision


def visible(subject: Subject, resource: Resource) -> bool:
    """Whether `subject` may know that `resource` exists: anyone a public record; its owner
    and reviewers (a request's researcher and DAC, a token's user); the holder of a grant on a
    dataset; the roles `WATCHERS` names for its kind, within a token's scopes; the operator."""
    if subject.kind is SubjectKind.OPERATOR or resource.public:
        return True
    if subject.kind is not SubjectKind.USER:
        return False
    if resource.owner == subject.id or subject.id in resource.reviewers:
        return True
    if resource.kind == "dataset" and resource.accession in subject.grants:
        return True
    watch = WATCHERS.get(resource.kind)
    if watch is None:
        return False
    action, roles = watch
    in_scope = subject.scopes is None or str(action) in subject.scopes
    return in_scope and subject.has_role(*roles)


def require_visible(
    subject: Subject, action: Action, resource: Resource, *, missing: NotFoundError
) -> None:
    """Raise `missing` (as for a record that does not exist, the refusal carried for the audit
    log) unless `subject` may know that `resource` exists."""
    if not visible(subject, resource):
        raise hidden(missing, refusal(subject, action, resource, rule="not-visible"))


def refusal(
    subject: Subject,
    action: Action | str,
    resource: Resource,
    *,
    rule: str,
    datasets: Iterable[str] = (),
) -> Refusal:
    """The audit record of refusing `subject` `action` on `resource` by `rule`."""
    return Refusal(
        actor=subject.id,
        action=str(action),
        kind=resource.kind,
        rule=rule,
        accession=resource.accession,
        datasets=tuple(datasets),
    )


def hidden(missing: NotFoundError, record: Refusal) -> NotFoundError:
    """`missing` as it is (same message, same details), carrying the refusal `record`: the
    answer says what a missing record's says, the audit log what happened."""
    return NotFoundError(
        missing.message, message_zh=missing.message_zh, details=missing.details, refusal=record
    )


def _allow(rule: str, en: str, zh: str) -> Decision:
    return Decision(True, (en,), (zh,), rule=rule)


def _user_rule(subject: Subject, action: Action, resource: Resource) -> Decision | None:
    """The rules for signed-in users; None when no user rule applies (the general rules do)."""
    if subject.scopes is not None and str(action) not in subject.scopes:
        return None  # outside the token's scopes the caller has what anyone has
    reads = (Action.READ_METADATA, Action.READ_INDIVIDUAL_RECORDS, Action.READ_SUBMISSIONS)
    if action in reads and subject.has_role(*STEWARDS):
        return _allow(
            "steward-read",
            "Data stewards and administrators see the catalog.",
            "数据管理员和系统管理员可查看目录。",
        )
    if action is Action.SUBMIT and subject.has_role(Role.SUBMITTER, *STEWARDS):
        return _allow("submitter", "Submitters may submit metadata.", "提交者可以提交元数据。")
    if action is Action.REQUEST_ACCESS and subject.has_role(Role.RESEARCHER):
        return _allow(
            "researcher-request",
            "Researchers may request access to datasets.",
            "研究人员可以申请数据集访问权限。",
        )
    if action is Action.READ_REQUEST and (
        resource.owner == subject.id
        or subject.id in resource.reviewers
        or subject.has_role(Role.ADMIN, Role.AUDITOR)
    ):
        return _allow(
            "request-party",
            "The requester, its reviewers and auditors see a request.",
            "申请人、审查该申请的委员会成员和审计人员可查看申请。",
        )
    if action in (Action.REVIEW_REQUEST, Action.REVOKE_GRANT) and subject.id in resource.reviewers:
        return _allow(
            "dac-member",
            "Members of the dataset's DAC decide on its access.",
            "数据集所属数据访问委员会的成员决定其访问权限。",
        )
    if action is Action.UPLOAD_FILES and resource.kind == "upload":
        if resource.owner != subject.id:
            return Decision(
                False,
                ("An upload is continued by the account that opened it.",),
                ("上传只能由开启它的账号继续。",),
                rule="own-upload",
            )
        return _allow("own-upload", "Uploaders continue their uploads.", "上传者可继续其上传。")
    if action is Action.UPLOAD_FILES and (
        subject.has_role(*STEWARDS)
        or (subject.has_role(Role.SUBMITTER) and resource.owner == subject.id)
    ):
        return _allow(
            "file-upload",
            "Submitters upload the files they declared; stewards upload any declared file.",
            "提交者可上传其声明的文件；数据管理员可上传任何已声明的文件。",
        )
    if action is Action.LIST_FILES and subject.has_role(*STEWARDS):
        return _allow(
            "file-list",
            "Data stewards and administrators list the archived files.",
            "数据管理员和系统管理员可查看归档文件列表。",
        )
    if action is Action.REGISTER_KEY and resource.owner == subject.id:
        return _allow(
            "own-key",
            "Users register their own Crypt4GH public key.",
            "用户可登记自己的 Crypt4GH 公钥。",
        )
    if action is Action.READ_AUDIT and subject.has_role(Role.AUDITOR, Role.ADMIN):
        return _allow(
            "audit-entries",
            "Auditors and administrators read the audit entries.",
            "审计人员和系统管理员可查看审计条目。",
        )
    if action is Action.READ_METRICS and subject.has_role(Role.ADMIN):
        return _allow(
            "metrics-admin",
            "Administrators read the node's metrics.",
            "系统管理员可查看节点指标。",
        )
    if action is Action.READ_COMPLIANCE and subject.has_role(
        Role.AUDITOR, Role.ADMIN, Role.DATA_STEWARD
    ):
        return _allow(
            "compliance-report",
            "Auditors, stewards and administrators read compliance reports.",
            "审计人员、数据管理员和系统管理员可查看合规报告。",
        )
    if action is Action.READ_PRIVACY_REPORT and subject.has_role(
        Role.DATA_STEWARD, Role.ADMIN, Role.AUDITOR
    ):
        return _allow(
            "privacy-report",
            "Data stewards, auditors and administrators read how private a dataset is.",
            "数据管理员、审计人员和系统管理员可查看数据集的隐私报告。",
        )
    if action is Action.REVOKE_GRANT and subject.has_role(Role.ADMIN):
        return _allow(
            "admin-revoke", "Administrators may revoke any grant.", "系统管理员可撤销任何授权。"
        )
    if action is Action.CONFIRM_AFFILIATIONS and (
        subject.has_role(Role.ADMIN)
        or (
            subject.has_role(Role.DATA_STEWARD)
            and subject.institution is not None
            and resource.accession == subject.institution
        )
    ):
        return _allow(
            "affiliation-confirm",
            "A data steward of the institution, or an administrator, confirms who belongs to it.",
            "机构的数据管理员或系统管理员可确认账号是否属于该机构。",
        )
    if action in (Action.MANAGE_USERS, Action.MANAGE_DACS, Action.VERIFY_INSTITUTIONS) and (
        subject.has_role(Role.ADMIN)
    ):
        return _allow("admin-users", "Administrators manage accounts.", "系统管理员管理账号。")
    if action is Action.MANAGE_TOKENS and (
        subject.has_role(Role.ADMIN) or subject.id in (resource.accession, resource.owner)
    ):
        return _allow(
            "own-tokens", "Users manage their own API tokens.", "用户可管理自己的 API 令牌。"
        )
    return None


def decide_metrics(subject: Subject, *, from_listed_address: bool) -> Decision:
    """Whether `subject` may read the node's metrics: anyone from an address the operator
    listed (`metrics_allow_ips`: the Prometheus servers), else as `decide` says (an
    administrator, within a token's scopes)."""
    if from_listed_address:
        return _allow(
            "metrics-address",
            "The request comes from an address allowed to scrape the node's metrics.",
            "请求来自允许抓取节点指标的地址。",
        )
    return decide(subject, Action.READ_METRICS, Resource("metrics"))


def decide_new_token(
    subject: Subject, *, scopes: frozenset[str] | None, expires_at: datetime
) -> Decision:
    """Whether `subject`, allowed to manage the tokens of an account, may make it a token with
    `scopes` (None: whatever the account's roles allow) that expires at `expires_at`.

    A token never makes a token worth more than itself: a scoped token makes tokens scoped to a
    subset of its scopes only (never an unscoped one), and an API token makes none that outlives
    it. A session token (a sign-in, with the one-time code where the account has one) is
    unscoped and may make API tokens of any lifetime the service allows, as the person signing
    in may; so may the node's operator."""
    if subject.kind is SubjectKind.OPERATOR:
        return _allow(
            "operator",
            "The node operator makes tokens from the command line.",
            "节点运维人员可通过命令行创建令牌。",
        )
    if subject.scopes is not None:
        if scopes is None:
            return Decision(
                False,
                (
                    f"This token is scoped to {', '.join(sorted(subject.scopes))}: it can make "
                    "tokens scoped to some of these only, not an unscoped one; name the scopes.",
                ),
                (
                    f"当前令牌的权限范围为 {', '.join(sorted(subject.scopes))}：只能创建权限范围为其子集的"
                    "令牌，不能创建不限范围的令牌；请指定权限范围。",
                ),
                rule="token-scope",
            )
        beyond = sorted(scopes - subject.scopes)
        if beyond:
            return Decision(
                False,
                (f"This token may not give scopes it does not hold itself: {', '.join(beyond)}.",),
                (f"当前令牌不能授予其自身不具备的权限范围：{', '.join(beyond)}。",),
                rule="token-scope",
            )
    credential = subject.credential
    if credential is None:
        return Decision(
            False,
            ("Tokens are made by a signed-in session or a token; this request carries neither.",),
            ("令牌须由已登录的会话或令牌创建；此请求两者皆无。",),
            rule="token-lifetime",
        )
    if credential.kind is not CredentialKind.SESSION and expires_at > credential.expires_at:
        return Decision(
            False,
            (
                "A token may not make a token that outlives it: the new token must expire by "
                f"{credential.expires_at.isoformat()} (ask for fewer days, or sign in to make a "
                "longer-lived one).",
            ),
            (
                f"令牌不能创建比其自身有效期更长的令牌：新令牌须在 {credential.expires_at.isoformat()} "
                "之前到期（请缩短天数，或登录后再创建）。",
            ),
            rule="token-lifetime",
        )
    return _allow(
        "token-within-limits",
        "The new token holds no more than the token that asks for it.",
        "新令牌的权限不超过申请它的令牌。",
    )


FINGERPRINT = "fingerprint-delivery"
AUDIT = "record-in-audit-log"


def _data_rule(subject: Subject, action: Action, resource: Resource) -> Decision:
    """Data by tier: open -> aggregates for anyone; registered -> aggregates for signed-in
    researchers of a verified institution; controlled -> aggregates for holders of a grant in
    force, as the Beacon answers; records (any tier) for holders of a grant in force whose
    institution's location the jurisdiction rules allow."""
    tier = resource.tier or "controlled"
    if action is Action.READ_AGGREGATES:
        if tier == "open":
            return _allow(
                "open-aggregates",
                "Aggregates of open datasets are public.",
                "开放数据集的汇总数据是公开的。",
            )
        verified = subject.kind is SubjectKind.USER and subject.institution_verified
        if tier == "registered" and verified:
            return _allow(
                "registered-aggregates",
                "Signed-in users of a verified institution see aggregates.",
                "已核验机构的登录用户可查看汇总数据。",
            )
        if resource.accession in subject.grants:
            return _allow(
                "granted-aggregates", "A grant covers the aggregates.", "访问授权包含汇总数据。"
            )
        if tier == "registered":
            return Decision(
                False,
                ("Sign in with an account of a verified institution.",),
                ("请使用已核验机构的账号登录。",),
                rule="registered-only",
            )
        return Decision(
            False,
            (
                "Aggregates of a controlled dataset come with an approved access grant for it, "
                "as its records do; request access (POST /api/v1/requests).",
            ),
            ("受控数据集的汇总数据与其记录一样，需要该数据集已批准的访问授权；请提交访问申请。",),
            rule="controlled-aggregates",
        )
    if resource.accession not in subject.grants:
        return Decision(
            False,
            (
                "Record-level data needs an approved, unexpired access grant for this dataset; "
                "request access (POST /api/v1/requests).",
            ),
            ("个体水平数据需要该数据集已批准且未过期的访问授权；请提交访问申请。",),
            rule="no-grant",
        )
    if resource.jurisdiction_allows is False:
        return Decision(
            False,
            resource.jurisdiction_reasons,
            resource.jurisdiction_reasons_zh,
            rule="jurisdiction",
        )
    return Decision(
        True,
        ("An access grant in force covers this dataset.",),
        ("有效的访问授权涵盖该数据集。",),
        rule="grant",
        obligations=(FINGERPRINT, AUDIT),
    )
