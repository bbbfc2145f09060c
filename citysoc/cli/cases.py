"""`soc cases list|show|assign|status|comment|close|merge`: working the case queue of the case API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from citysoc.caseclient import CaseClient
from citysoc.cli.common import JsonOpt, TenantOpt, api_refusals, console, err_console, load_settings, print_json_lines
from citysoc.cli.render import print_case_detail, print_case_queue, print_evidence
from citysoc.wiring import case_client

app = typer.Typer(help="The case queue: list, read and work cases.", no_args_is_help=True)

CaseArg = Annotated[int, typer.Argument(help="Case id.", min=1, max=2**31 - 1)]
RESOLUTIONS = ("true_positive", "benign", "false_positive", "duplicate")
STATUSES = ("new", "in_progress", "on_hold", "awaiting_member", "resolved", "closed")
RESOLUTION_HELP = f"With resolved/closed: {', '.join(RESOLUTIONS)}."


@contextmanager
def _client() -> Iterator[CaseClient]:
    """The analyst's client; a refusal of the API becomes a one-line error and exit code 1."""
    with api_refusals(), case_client(load_settings(), role="soc_analyst") as client:
        yield client


def _changed(case: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json_lines([{k: v for k, v in case.items() if k not in ("alerts", "events", "campaigns")}])
        return
    console.print(f"case {case['id']} {what}: {case['status']}"
                  + (f" ({case['resolution']})" if case.get("resolution") else "")
                  + (f", assigned to {case['assignee']}" if case.get("assignee") else ""))


@app.command("list")
def cases_list(tenant: TenantOpt = None, as_json: JsonOpt = False,
               status: Annotated[str | None, typer.Option(help="Only cases with this status.")] = None,
               show_all: Annotated[bool, typer.Option("--all", help="Resolved and closed cases too.")] = False,
               ) -> None:
    """The open queue, by SLA due time then severity (`--all` for resolved and closed cases too)."""
    with _client() as client:
        cases = client.list_cases(tenant=tenant, status=status, open_only=not (show_all or status))
    if as_json:
        print_json_lines(cases)
        return
    print_case_queue(console, cases, title="Cases" if show_all else "Open cases")


@app.command("show")
def cases_show(case_id: CaseArg, as_json: JsonOpt = False,
               evidence: Annotated[bool, typer.Option("--evidence", "--events",
                                                      help="The raw events behind its alerts, a page at a time.")]
               = False,
               limit: Annotated[int, typer.Option(help="Events per page (with --evidence).", min=1, max=200)] = 20,
               offset: Annotated[int, typer.Option(help="Events to skip (with --evidence).", min=0,
                                                   max=10_000_000)] = 0,
               ) -> None:
    """One case: its fields, comments, tasks, observables, recent alerts and audit trail; with `--evidence`, the
    raw events (ECS and original record) behind its alerts instead, oldest alert first."""
    if evidence:
        with _client() as client:
            page = client.case_evidence(case_id, limit=limit, offset=offset)
        if as_json:
            print_json_lines(page["items"])
        else:
            print_evidence(console, page)
        return
    with _client() as client:
        case = client.get_case(case_id)
        parts = {part: client.case_part(case_id, part) for part in ("comments", "tasks", "observables")}
    if as_json:
        print_json_lines([{**case, **parts}])
        return
    print_case_detail(console, case, **parts)


@app.command("assign")
def cases_assign(case_id: CaseArg, user: Annotated[str, typer.Argument(help="A known user (their API key's name); "
                                                                        "'-' unassigns.")],
                 as_json: JsonOpt = False) -> None:
    """Assign a case to a user."""
    with _client() as client:
        case = client.update_case(case_id, assignee=None if user == "-" else user)
    _changed(case, as_json, "assigned")


@app.command("status")
def cases_status(case_id: CaseArg,
                 status: Annotated[str, typer.Argument(help=f"One of {', '.join(STATUSES)}.")],
                 resolution: Annotated[str | None, typer.Option(help=RESOLUTION_HELP)] = None,
                 as_json: JsonOpt = False) -> None:
    """Move a case along its workflow (closing needs --resolution; awaiting_member pauses the SLA clocks)."""
    changes: dict[str, Any] = {"status": status}
    if resolution:
        changes["resolution"] = resolution
    with _client() as client:
        case = client.update_case(case_id, **changes)
    _changed(case, as_json, "now")


@app.command("close")
def cases_close(case_ids: Annotated[list[int], typer.Argument(help="Case ids.", min=1, max=2**31 - 1)],
                resolution: Annotated[str, typer.Option(help=f"Why: {', '.join(RESOLUTIONS)}.")],
                comment: Annotated[str | None, typer.Option(help="A comment added to each case.")] = None,
                as_json: JsonOpt = False) -> None:
    """Close one or more cases with a resolution (several in one request)."""
    with _client() as client:
        arguments: dict[str, Any] = {"resolution": resolution}
        if comment:
            arguments["comment"] = comment
        results = client.bulk_cases("close", case_ids, **arguments)
    _bulk_outcome(results, as_json, "closed")


@app.command("comment")
def cases_comment(case_id: CaseArg, text: Annotated[str, typer.Argument(help="The comment.")],
                  as_json: JsonOpt = False) -> None:
    """Add a comment to a case."""
    with _client() as client:
        comment = client.comment_case(case_id, text)
    if as_json:
        print_json_lines([comment])
        return
    console.print(f"comment {comment['id']} added to case {case_id}")


@app.command("merge")
def cases_merge(target: CaseArg, sources: Annotated[list[int], typer.Argument(help="Cases merged into TARGET.",
                                                                             min=1, max=2**31 - 1)],
                as_json: JsonOpt = False) -> None:
    """Merge cases of one member into TARGET; each is closed as a duplicate of it."""
    with _client() as client:
        case = client.merge_cases(target, sources)
    if as_json:
        print_json_lines([case])
        return
    console.print(f"case {case['id']} now holds {case['alert_count']} alert(s); merged "
                  + ", ".join(str(s) for s in sources))


def _bulk_outcome(results: list[dict[str, Any]], as_json: bool, verb: str) -> None:
    if as_json:
        print_json_lines(results)
    else:
        for result in results:
            line = f"case {result['case_id']}: " + (verb if result["ok"] else result["detail"])
            (console if result["ok"] else err_console).print(line)
    if not all(result["ok"] for result in results):
        raise typer.Exit(1)
