"""What became of a ping, named: one word (`kind`) and one line (`text`).

The bridge's record says what happened to the request (answered and judged, expired in the
queue, read and never answered, a reply matching no request); the client's own events say
why (harness/session.py): its retries (`api_retry`, by HTTP status), the streams it lost
and recovered without a word (2.1.197's fall-back to a non-streaming request), the commands
its permissions refused, the writes the bridge answered with `ERR`, the fallback model, and
how the run ended (the API gave up, the budget, the turn limit, the harness's time limit, a
crash, Ctrl-C). `classify` joins them. The kinds, most telling first:

    answered                    a reply was written; `text` starts with its verdict
    answered_after_retries      ... after the client retried (429, 529, 500, cut streams)
    answered_by_fallback_model  ... by the model --fallback-model names
    refused_then_answered       ... after the permissions refused a command (`python3 -c`)
    malformed_then_answered     ... after a write the bridge refused (bad hex)
    answered_twice              ... and written again: the second matched no request
    late                        a reply was written after ping had given up
    read_not_written            the agent read the request and wrote nothing
    refused                     ... and a command of its was refused
    malformed_write             ... its only writes were refused by the bridge
    api_gave_up                 the client stopped: its retries ran out (or a 4xx)
    stream_cut                  a stream was cut and the turn ended with it (2.1.197)
    context_too_small           the backend said the prompt does not fit
    budget_exhausted            --max-budget-usd was reached
    max_turns                   the client's turn limit was reached
    client_timeout              the harness stopped a run that went over its time
    mcp_not_connected           the harness stopped a run whose tunbridge MCP server did not connect
    client_crashed              the client exited with an error of its own
    interrupted                 Ctrl-C
    expired_in_queue            no agent read it before its time was up (the bridge dropped it)
    overflow                    the bridge's queue was full
    not_sent                    ping never sent it (continuous: the run ended first)
    lost                        no request reached the bridge
"""

import re
from dataclasses import dataclass, field

ANSWERED = ("answered", "answered_after_retries", "answered_by_fallback_model", "refused_then_answered",
            "malformed_then_answered", "answered_twice")
KINDS = ANSWERED + ("late", "read_not_written", "refused", "malformed_write", "api_gave_up", "stream_cut",
                    "context_too_small", "budget_exhausted", "max_turns", "client_timeout", "mcp_not_connected", "client_crashed",
                    "interrupted", "expired_in_queue", "overflow", "not_sent", "lost")
TOO_LONG = re.compile(r"prompt is too long|exceeds the available context|maximum context length", re.I)
TIMEOUT_STATUS = (124, 137, -9, -15)   # timeout(1), SIGKILL, SIGTERM: the harness stopped it


@dataclass
class Evidence:
    """What the client's events say about the handling of one ping."""

    retries: list = field(default_factory=list)      # [{status, error}] from api_retry events
    cuts: int = 0                                    # streams recovered without an event
    fallback: str = None                             # the fallback model that took over
    refused: list = field(default_factory=list)      # commands the permissions refused
    write_errors: list = field(default_factory=list)  # the bridge's ERR lines for writes
    writes: int = 0                                  # writes the bridge answered OK
    read: bool = False                               # a read returned this ping's packet
    ended: bool = False                              # the run ended while this ping was held
    result: dict = None                              # the run's result, when it ended here
    status: int = None                               # the run's exit status, when it ended here
    stopped: str = None                              # "timeout", "interrupted", "mcp": the harness stopped it


def retry_words(retries: list, cuts: int = 0) -> str:
    """"2 retries of a 529, 1 of a 429" from the client's api_retry events (a null status is
    a stream that broke); a silent fall-back counts as a cut stream."""
    by = {}
    for r in retries:
        by[r.get("status") or "cut"] = by.get(r.get("status") or "cut", 0) + 1
    parts = []
    for i, (status, n) in enumerate(sorted(by.items(), key=lambda kv: -kv[1])):
        what = "a cut stream" if status == "cut" else f"a {status}"
        parts.append(f"{n} {'retry' if n == 1 else 'retries'} of {what}" if i == 0 else f"{n} of {what}")
    if cuts:
        parts.append(f"{cuts} cut stream{'s' if cuts != 1 else ''} recovered without a retry event")
    return ", ".join(parts)


def short(command: str, n: int = 40) -> str:
    command = command.strip()
    return f"`{command[:n]}...`" if len(command) > n else f"`{command}`"


def ended_why(e: Evidence):
    """(kind, text) for a run that ended badly while it held this ping, or None."""
    r = e.result or {}
    text = (r.get("result") or "").strip().splitlines()
    first = (text[0][:72] + ("..." if len(text[0]) > 72 else "")) if text else ""
    if e.stopped == "interrupted":
        return "interrupted", "interrupted (Ctrl-C)"
    if e.stopped == "mcp":
        return "mcp_not_connected", "the harness stopped the client: the tunbridge MCP server was not connected"
    if e.stopped == "timeout" or (e.status in TIMEOUT_STATUS and not r):
        return "client_timeout", "the harness stopped the client: it went over its time"
    if r.get("subtype") == "error_max_budget_usd":
        return "budget_exhausted", "the client's budget (--max-budget-usd) ran out"
    if r.get("subtype") == "error_max_turns":
        return "max_turns", "the client's turn limit was reached"
    if r.get("is_error") and TOO_LONG.search(r.get("result") or ""):
        return "context_too_small", f"the backend said the prompt does not fit ({first})"
    if r.get("is_error"):
        tried = retry_words(e.retries)
        return "api_gave_up", f"the API gave up{' after ' + tried if tried else ''} ({first})"
    if r and r.get("stop_reason") is None and e.cuts:
        return "stream_cut", "a stream was cut and the turn ended with it"
    if e.status not in (None, 0) and not r:
        return "client_crashed", f"the client exited with status {e.status} and no result"
    return None


def along_the_way(e: Evidence, extra=()) -> list:
    """What happened on the way to an answer, as phrases."""
    said = list(extra)
    tried = retry_words(e.retries, e.cuts)
    if tried:
        said.append(f"after {tried}")
    if e.fallback:
        said.append(f"answered by the fallback model {e.fallback}")
    for command in e.refused:
        said.append(f"{short(command)} refused, then answered")
    if e.write_errors:
        said.append(f"a malformed write ({e.write_errors[0][:60]}), then answered")
    return said


def classify(record, received: bool, e: Evidence, duplicates=(), never_read_why: str = None):
    """(kind, text) for one ping: its bridge record (or None), whether ping saw a reply, the
    client's evidence, the records of later writes that matched no request (`duplicates`),
    and, for a request no agent read, what the record says of it (`never_read_why`)."""
    outcome = (record or {}).get("outcome")
    if outcome in ("answered", "refused"):
        verdict = record.get("verdict") or outcome
        if outcome == "refused":
            verdict = f"refused by the bridge: {verdict}"
        if not received:
            return "late", f"{verdict}; the reply came after ping had given up"
        extra = []
        kind = "answered"
        if duplicates:
            second = duplicates[0].get("class") or duplicates[0].get("verdict") or "unmatched"
            extra.append(f"written twice: first {record.get('class') or verdict}, second {second}")
            kind = "answered_twice"
        said = along_the_way(e, extra)
        if kind == "answered":
            kind = ("refused_then_answered" if e.refused else "malformed_then_answered" if e.write_errors
                    else "answered_by_fallback_model" if e.fallback else
                    "answered_after_retries" if e.retries or e.cuts else "answered")
        return kind, "; ".join([verdict] + said)
    if outcome == "overflow":
        return "overflow", "dropped: the bridge's queue was full"
    if outcome == "unanswered" or (record is None and e.read):
        bad = ended_why(e) if e.ended else None
        if e.write_errors and not e.writes:
            return "malformed_write", f"read; every write was refused by the bridge ({e.write_errors[0][:60]})"
        if bad:
            return bad[0], f"read, then {bad[1]}"
        if e.refused:
            return "refused", f"read; {short(e.refused[0])} refused, and nothing was written"
        return "read_not_written", "read and never written"
    # Never read: why the agent did not get to it, if its run ended badly.
    bad = ended_why(e) if e.ended else None
    if outcome in ("stale", "queued") or never_read_why:
        why = never_read_why or "expired in the queue (older than --max-age)"
        if bad:
            return bad[0], f"never read: {bad[1]}; {why}"
        return "expired_in_queue", why
    if bad:
        return bad[0], f"never read: {bad[1]}"
    return "lost", "no request reached the bridge"
