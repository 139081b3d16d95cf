"""Early warning: rules over the audit event stream, evaluated event by event.

The rules are versioned data (`alert_rules/*.json`, or the file `GENECOMMONS_ALERT_RULES_FILE`
names) with their thresholds, read by `alert_rule_data`; the code here only evaluates them. Six
kinds:

- `grant_volume`: downloads (events and bytes) per grant, i.e. per account and dataset, in
  fixed windows, beyond a configured ceiling or beyond `history_factor` times the mean of the
  grant's own past windows;
- `after_grant_end`: a delivery, or a refused attempt, by an account whose grant on that dataset
  had expired or was revoked (the grants are facts the caller looks up: `GrantFacts`);
- `unexpected_network`: an account seen at an address it was never seen at before (once it has
  a history), or outside the networks configured for its institution;
- `event`: every event of the tags (a Beacon account near its privacy budget, the use of a
  revoked or expired token), once per key and window;
- `repeated`: `threshold` events of the tags (refusals, failed sign-ins) for one account or
  address (the event's actor or subject, as `keys` says) within a window;
- `many_accounts`: `threshold` distinct accounts from one address within a window.

`EarlyWarning` holds what the rules remember (windows, addresses seen, past volumes) as a JSON
document, so that a watcher can keep it beside its cursor and resume where it stopped. Each
`Finding` names the leaves of the log behind it. This module is pure: no database, no web.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from genecommons.audit.alert_rule_data import AlertRule, AlertRuleSet, Network, RuleKind

MAX_EVIDENCE = 50
"""At most this many leaves are named behind one alert (the latest)."""
MAX_ADDRESSES = 50
"""Addresses remembered per account (the most recent)."""


# -- evaluation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchedEvent:
    """One event of the log, as the rules see it."""

    leaf_index: int
    occurred_at: datetime
    tag: str
    actor: str
    subject: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class GrantEnd:
    """A grant of an account on a dataset that had ended before some moment."""

    grant: int
    dataset: str
    ended_at: datetime
    why: str  # "expired" or "revoked"


class GrantFacts(Protocol):
    """What `after_grant_end` needs to know of grants (a database lookup at the edge)."""

    def ended_grant(self, account: str, datasets: Sequence[str], at: datetime) -> GrantEnd | None:
        """A grant of `account` on one of `datasets` that had ended by `at`, when the account
        held none of them in force at `at`; else None."""
        ...


@dataclass(frozen=True, slots=True)
class Finding:
    """What a rule found: an alert to raise."""

    rule: str
    severity: str
    key: str
    summary: str
    summary_zh: str
    details: dict[str, Any]
    leaf_indices: tuple[int, ...]
    first_at: datetime
    last_at: datetime


def _field(event: WatchedEvent, name: str) -> Any:
    for part in name.split("|"):
        if part == "actor":
            value: Any = event.actor
        elif part == "subject":
            value = event.subject
        else:
            value = event.details.get(part.removeprefix("details."))
        if value not in (None, ""):
            return value
    return None


def _address(event: WatchedEvent) -> str | None:
    address = event.details.get("address")
    if not address and event.subject and event.subject.startswith("address:"):
        address = event.subject.removeprefix("address:")
    if not address and event.actor.startswith("address:"):
        address = event.actor.removeprefix("address:")
    return str(address) if address and address != "unknown" else None


def _account(event: WatchedEvent) -> str | None:
    for value in (event.actor, event.subject):
        if value and value.startswith("user:"):
            return value
    return None


def _datasets(event: WatchedEvent) -> list[str]:
    found = event.details.get("datasets")
    if isinstance(found, list):
        return [str(d) for d in found]
    single = event.details.get("dataset")
    return [str(single)] if single else []


def _bytes(event: WatchedEvent) -> int:
    value = event.details.get("bytes")
    if type(value) is int and value >= 0:
        return value
    start, end = event.details.get("start"), event.details.get("end")
    if type(start) is int and type(end) is int and end >= start >= 0:
        return (end >> 16) - (start >> 16)  # BGZF virtual offsets: compressed bytes covered
    return 0


def _in_networks(address: str, networks: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def _when(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


class EarlyWarning:
    """Evaluates a rule set over events fed in log order; `state` is what it remembers."""

    def __init__(self, rule_set: AlertRuleSet, state: Mapping[str, Any] | None = None) -> None:
        self.rule_set = rule_set
        loaded = json.loads(json.dumps(dict(state or {})))
        self.state: dict[str, Any] = loaded if loaded.get("rule_set") == rule_set.id else {}
        self.state["rule_set"] = rule_set.id
        self._by_tag: dict[str, list[AlertRule]] = {}
        for rule in rule_set.rules:
            for tag in rule.tags:
                self._by_tag.setdefault(tag, []).append(rule)

    def _memory(self, rule: AlertRule) -> dict[str, Any]:
        rules: dict[str, Any] = self.state.setdefault("rules", {})
        memory: dict[str, Any] = rules.setdefault(rule.id, {})
        return memory

    def feed(self, event: WatchedEvent, facts: GrantFacts) -> list[Finding]:
        """The findings this event raises, updating what the rules remember."""
        findings: list[Finding] = []
        for rule in self._by_tag.get(event.tag, ()):
            evaluate = _KINDS[rule.kind]
            for finding in evaluate(self, rule, event, facts):
                if self._cooled(rule, finding.key, event):
                    findings.append(finding)
        return findings

    def expire(self, now: datetime) -> None:
        """Forget windows and cool-downs that ended before `now` (keeps the state small)."""
        moment = now.timestamp()
        for rule in self.rule_set.rules:
            memory = self._memory(rule)
            cooling = memory.get("cooldown", {})
            for key in [k for k, until in cooling.items() if until <= moment]:
                del cooling[key]
            since = moment - rule.window_seconds
            if rule.kind is RuleKind.REPEATED:
                windows = memory.get("windows", {})
                for key in [k for k, v in windows.items() if v[-1][0] < since]:
                    del windows[key]
            elif rule.kind is RuleKind.MANY_ACCOUNTS:
                latest = _latest(memory)
                for key in [
                    k
                    for k, v in latest.items()
                    if max((at for at, _ in v.values()), default=0) < since
                ]:
                    del latest[key]

    def _cooled(self, rule: AlertRule, key: str, event: WatchedEvent) -> bool:
        """Whether an alert for `key` may be raised now (one per key per window)."""
        cooling = self._memory(rule).setdefault("cooldown", {})
        moment = event.occurred_at.timestamp()
        if cooling.get(key, 0) > moment:
            return False
        cooling[key] = moment + rule.window_seconds
        return True

    def _finding(
        self,
        rule: AlertRule,
        *,
        key: str,
        summary: str,
        summary_zh: str,
        details: dict[str, Any],
        leaves: Sequence[tuple[float, int]],
    ) -> Finding:
        recent = list(leaves)[-MAX_EVIDENCE:]
        return Finding(
            rule=rule.id,
            severity=rule.severity,
            key=key,
            summary=f"{rule.title}: {summary}",
            summary_zh=f"{rule.title_zh}：{summary_zh}",
            details=details,
            leaf_indices=tuple(leaf for _, leaf in recent),
            first_at=_when(recent[0][0]),
            last_at=_when(recent[-1][0]),
        )


def _grant_volume(
    warning: EarlyWarning, rule: AlertRule, event: WatchedEvent, _facts: GrantFacts
) -> list[Finding]:
    memory = warning._memory(rule).setdefault("grants", {})
    moment = event.occurred_at.timestamp()
    bucket = int(moment // rule.window_seconds)
    amount = _bytes(event)
    findings = []
    for dataset in _datasets(event) or [str(event.subject)]:
        key = f"{event.actor}|{dataset}"
        grant = memory.setdefault(
            key, {"bucket": bucket, "events": 0, "bytes": 0, "leaves": [], "history": []}
        )
        if grant["bucket"] != bucket:
            if grant["events"]:
                grant["history"] = [*grant["history"], [grant["events"], grant["bytes"]]][
                    -rule.history_windows :
                ]
            grant.update(bucket=bucket, events=0, bytes=0, leaves=[], fired=False)
        grant["events"] += 1
        grant["bytes"] += amount
        grant["leaves"] = [*grant["leaves"], [moment, event.leaf_index]][-MAX_EVIDENCE:]
        if grant.get("fired"):
            continue
        reasons, reasons_zh = _volume_reasons(rule, grant)
        if not reasons:
            continue
        grant["fired"] = True
        account = event.actor
        findings.append(
            warning._finding(
                rule,
                key=key,
                summary=f"{account} fetched {grant['events']} times, {grant['bytes']} bytes, "
                f"of {dataset} within {rule.window_seconds} s ({'; '.join(reasons)})",
                summary_zh=f"{account} 在 {rule.window_seconds} 秒内获取 {dataset} "
                f"{grant['events']} 次、{grant['bytes']} 字节（{'；'.join(reasons_zh)}）",
                details={
                    "account": account,
                    "dataset": dataset,
                    "events": grant["events"],
                    "bytes": grant["bytes"],
                    "window_seconds": rule.window_seconds,
                    "history": grant["history"],
                    "reasons": reasons,
                },
                leaves=[(t, leaf) for t, leaf in grant["leaves"]],
            )
        )
    return findings


def _volume_reasons(rule: AlertRule, grant: dict[str, Any]) -> tuple[list[str], list[str]]:
    reasons: list[str] = []
    reasons_zh: list[str] = []
    events, size = grant["events"], grant["bytes"]
    if rule.ceiling_events is not None and events > rule.ceiling_events:
        reasons.append(f"more than the ceiling of {rule.ceiling_events} downloads")
        reasons_zh.append(f"超过上限 {rule.ceiling_events} 次")
    if rule.ceiling_bytes is not None and size > rule.ceiling_bytes:
        reasons.append(f"more than the ceiling of {rule.ceiling_bytes} bytes")
        reasons_zh.append(f"超过上限 {rule.ceiling_bytes} 字节")
    history = grant["history"]
    if (
        rule.history_factor is not None
        and len(history) >= rule.history_minimum
        and events >= rule.minimum_events
    ):
        usual_events = sum(h[0] for h in history) / len(history)
        usual_bytes = sum(h[1] for h in history) / len(history)
        if events > rule.history_factor * usual_events:
            reasons.append(
                f"{events / usual_events:.1f} times this grant's usual {usual_events:.1f} "
                "downloads a window"
            )
            reasons_zh.append(
                f"为该授权通常每窗口 {usual_events:.1f} 次的 {events / usual_events:.1f} 倍"
            )
        elif usual_bytes and size > rule.history_factor * usual_bytes:
            reasons.append(
                f"{size / usual_bytes:.1f} times this grant's usual {usual_bytes:.0f} bytes a window"
            )
            reasons_zh.append(
                f"为该授权通常每窗口 {usual_bytes:.0f} 字节的 {size / usual_bytes:.1f} 倍"
            )
    return reasons, reasons_zh


def _after_grant_end(
    warning: EarlyWarning, rule: AlertRule, event: WatchedEvent, facts: GrantFacts
) -> list[Finding]:
    account = _account(event)
    datasets = _datasets(event)
    if account is None or not datasets:
        return []
    ended = facts.ended_grant(account, datasets, event.occurred_at)
    if ended is None:
        return []
    what = "was refused" if event.tag == "access:decision:deny" else "was served"
    what_zh = "被拒绝" if event.tag == "access:decision:deny" else "获得了数据"
    moment = event.occurred_at.timestamp()
    return [
        warning._finding(
            rule,
            key=f"{account}|grant:{ended.grant}",
            summary=f"{account} asked for {ended.dataset} ({event.tag}) and {what} after grant "
            f"{ended.grant} {ended.why} at {ended.ended_at.isoformat()}",
            summary_zh=f"{account} 在授权 {ended.grant} 于 {ended.ended_at.isoformat()} "
            f"{'被撤销' if ended.why == 'revoked' else '到期'}后请求 {ended.dataset}（{event.tag}），{what_zh}",
            details={
                "account": account,
                "dataset": ended.dataset,
                "grant": ended.grant,
                "ended_at": ended.ended_at.isoformat(),
                "why": ended.why,
                "tag": event.tag,
            },
            leaves=[(moment, event.leaf_index)],
        )
    ]


def _unexpected_network(
    warning: EarlyWarning, rule: AlertRule, event: WatchedEvent, _facts: GrantFacts
) -> list[Finding]:
    account, address = _account(event), _address(event)
    if account is None or address is None:
        return []
    memory = warning._memory(rule)
    institutions = memory.setdefault("institutions", {})
    if event.details.get("institution"):
        institutions[account] = str(event.details["institution"])
    institution = institutions.get(account)
    seen_by_account = memory.setdefault("seen", {})
    seen: list[str] = seen_by_account.setdefault(account, [])
    reasons, reasons_zh = [], []
    networks = rule.networks.get(institution) if institution else None
    if networks and not _in_networks(address, networks):
        reasons.append(f"outside the networks of {institution}")
        reasons_zh.append(f"不在 {institution} 登记的网络内")
    if len(seen) >= rule.learn_first and address not in seen:
        reasons.append(f"never seen for this account (seen before: {', '.join(seen[-5:])})")
        reasons_zh.append(f"该账号从未使用过此地址（此前：{', '.join(seen[-5:])}）")
    if address in seen:
        seen.remove(address)
    seen_by_account[account] = [*seen, address][-MAX_ADDRESSES:]
    if not reasons:
        return []
    moment = event.occurred_at.timestamp()
    return [
        warning._finding(
            rule,
            key=f"{account}|{address}",
            summary=f"{account} at {address}: {'; '.join(reasons)}",
            summary_zh=f"{account} 来自 {address}：{'；'.join(reasons_zh)}",
            details={
                "account": account,
                "address": address,
                "institution": institution,
                "reasons": reasons,
                "tag": event.tag,
            },
            leaves=[(moment, event.leaf_index)],
        )
    ]


def _event_key(rule: AlertRule, event: WatchedEvent) -> str | None:
    parts = [_field(event, key) for key in rule.keys]
    if any(part is None for part in parts):
        return None
    return "|".join(str(part) for part in parts)


def _event(
    warning: EarlyWarning, rule: AlertRule, event: WatchedEvent, _facts: GrantFacts
) -> list[Finding]:
    key = _event_key(rule, event)
    if key is None:
        return []
    moment = event.occurred_at.timestamp()
    facts = {k: v for k, v in event.details.items() if isinstance(v, str | int | float | bool)}
    return [
        warning._finding(
            rule,
            key=key,
            summary=f"{key} ({event.tag})",
            summary_zh=f"{key}（{event.tag}）",
            details={"key": key, "tag": event.tag, "actor": event.actor, **facts},
            leaves=[(moment, event.leaf_index)],
        )
    ]


_WHO = ("user:", "address:")


def _repeated(
    warning: EarlyWarning, rule: AlertRule, event: WatchedEvent, _facts: GrantFacts
) -> list[Finding]:
    windows = warning._memory(rule).setdefault("windows", {})
    moment = event.occurred_at.timestamp()
    findings = []
    for name in rule.keys:
        value = _field(event, name)
        if not isinstance(value, str) or not value.startswith(_WHO):
            continue  # counted per account or address, not per file or token
        key = value
        window = [w for w in windows.get(key, []) if w[0] > moment - rule.window_seconds]
        window.append([moment, event.leaf_index])
        windows[key] = window
        if len(window) < rule.threshold:
            continue
        del windows[key]
        findings.append(
            warning._finding(
                rule,
                key=key,
                summary=f"{len(window)} for {key} within {rule.window_seconds} s",
                summary_zh=f"{key} 在 {rule.window_seconds} 秒内 {len(window)} 次",
                details={"key": key, "count": len(window), "window_seconds": rule.window_seconds},
                leaves=[(t, leaf) for t, leaf in window],
            )
        )
    return findings


def _latest(memory: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """Per address, each account's latest [moment, leaf] (state stored before 2026-12 kept
    every event of the window instead: it is folded in)."""
    latest: dict[str, dict[str, list[Any]]] = memory.setdefault("latest", {})
    for address, window in memory.pop("windows", {}).items():
        seen = latest.setdefault(address, {})
        for moment, leaf, account in window:
            if account not in seen or seen[account][0] <= moment:
                seen[account] = [moment, leaf]
    return latest


def _many_accounts(
    warning: EarlyWarning, rule: AlertRule, event: WatchedEvent, _facts: GrantFacts
) -> list[Finding]:
    account, address = _account(event), _address(event)
    if account is None or address is None:
        return []
    # per address, each account's latest event from it: as many entries as accounts, however
    # busy the address (one account's thousands of token uses from a gateway stay one entry)
    latest = _latest(warning._memory(rule))
    moment = event.occurred_at.timestamp()
    since = moment - rule.window_seconds
    seen = latest.setdefault(address, {})
    seen[account] = [moment, event.leaf_index]
    for gone in [a for a, (at, _leaf) in seen.items() if at <= since]:
        del seen[gone]
    if len(seen) < rule.threshold:
        return []
    del latest[address]
    accounts = sorted(seen)
    evidence = sorted((at, leaf) for at, leaf in seen.values())
    return [
        warning._finding(
            rule,
            key=address,
            summary=f"{len(accounts)} accounts from {address} within {rule.window_seconds} s: "
            f"{', '.join(accounts[:20])}",
            summary_zh=f"{rule.window_seconds} 秒内有 {len(accounts)} 个账号来自 {address}："
            f"{', '.join(accounts[:20])}",
            details={
                "address": address,
                "accounts": accounts,
                "window_seconds": rule.window_seconds,
            },
            leaves=evidence,  # each account's latest event from the address
        )
    ]


_KINDS = {
    RuleKind.GRANT_VOLUME: _grant_volume,
    RuleKind.AFTER_GRANT_END: _after_grant_end,
    RuleKind.UNEXPECTED_NETWORK: _unexpected_network,
    RuleKind.EVENT: _event,
    RuleKind.REPEATED: _repeated,
    RuleKind.MANY_ACCOUNTS: _many_accounts,
}
