"""Prices, invoices and the business report."""

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from tokenmill.cli.admin_commands import Json, Url
from tokenmill.cli.client import AdminClient
from tokenmill.cli.output import console, emit

prices = typer.Typer(
    help="Price books: versioned prices per model and token class.", no_args_is_help=True
)
invoices = typer.Typer(help="Invoices: close a month, list, show or export.", no_args_is_help=True)
budgets = typer.Typer(help="Money budgets and prepaid credits.", no_args_is_help=True)
Price = Annotated[str | None, typer.Option(help="Per 1M tokens, a decimal such as 0.15")]


@prices.command("list")
def prices_list(url: Url = None, json_out: Json = False) -> None:
    data = AdminClient(url).call("GET", "/admin/prices")["data"]
    cols = [
        "model",
        "token_class",
        "price_per_1m",
        "currency",
        "tenant",
        "effective_from",
        "book",
        "version",
        "source",
    ]
    emit(data, json_out, cols, "prices")


@prices.command("set")
def prices_set(
    model: Annotated[str, typer.Argument(help="A model name, or '*' for any other")],
    source: Annotated[str, typer.Option(help="Where the price comes from (a list, a contract)")],
    input: Price = None,
    cached_input: Price = None,
    output: Price = None,
    currency: Annotated[str, typer.Option()] = "USD",
    tenant: Annotated[str | None, typer.Option(help="A contract price for this tenant")] = None,
    effective_from: Annotated[str | None, typer.Option(help="ISO 8601 (default: now)")] = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Add prices that supersede from --effective-from; earlier prices stay as they were."""
    body = {
        "model": model,
        "source": source,
        "currency": currency,
        "tenant": tenant,
        "input": input,
        "cached_input": cached_input,
        "output": output,
        "effective_from": effective_from,
    }
    data = AdminClient(url).call("POST", "/admin/prices", json=body)["data"]
    emit(
        data,
        json_out,
        ["id", "model", "token_class", "price_per_1m", "currency", "tenant"],
        "new prices",
    )


@invoices.command("close")
def invoices_close(
    tenant: Annotated[str, typer.Option()],
    period: Annotated[str, typer.Option(help="The month, YYYY-MM")],
    tax_rate: Annotated[str | None, typer.Option(help="e.g. 0.06 (default: the server's)")] = None,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Issue a tenant's invoices for a month (after the late-usage grace)."""
    body = {"tenant": tenant, "period": period, "tax_rate": tax_rate}
    data = AdminClient(url).call("POST", "/admin/invoices/close", json=body)["data"]
    if json_out:
        emit(data, True)
    elif not data:
        console.print(f"nothing to invoice for {tenant} in {period}")
    for inv in data if not json_out else ():
        console.print(
            f"issued [bold]{inv['number']}[/] ({inv['id']}): {len(inv['lines'])} "
            f"lines, total {inv['total']} {inv['currency']}"
        )


@invoices.command("list")
def invoices_list(
    tenant: Annotated[str | None, typer.Option()] = None, url: Url = None, json_out: Json = False
) -> None:
    params = {"tenant": tenant} if tenant else {}
    data = AdminClient(url).call("GET", "/admin/invoices", params=params)["data"]
    cols = ["id", "number", "tenant", "period_start", "subtotal", "tax", "total", "currency"]
    emit(data, json_out, cols, "invoices")


@invoices.command("show")
def invoices_show(
    invoice_id: str,
    format: Annotated[str, typer.Option(help="json | csv | pdf")] = "json",
    out: Annotated[Path | None, typer.Option(help="Write to this file (pdf: required)")] = None,
    url: Url = None,
) -> None:
    """An issued invoice, as it was issued."""
    content = (
        AdminClient(url)
        .request("GET", f"/admin/invoices/{invoice_id}", params={"format": format})
        .content
    )
    if out is not None:
        out.write_bytes(content)
        console.print(f"wrote {out} ({len(content)} bytes)")
    elif format == "pdf":
        console.print("a PDF goes to a file: add --out invoice.pdf")
        raise typer.Exit(2)
    else:
        sys.stdout.write(content.decode())


def report(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(min=1, help="How many days back")] = 30,
    top: Annotated[int, typer.Option(min=1, max=1000, help="How many tenants and models")] = 10,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Token revenue and tokens per day, ARPU, top tenants and models; `report economics`
    for cost, margin and energy."""
    if ctx.invoked_subcommand is not None:
        return
    now = time.time()
    data = AdminClient(url).call(
        "GET", "/admin/kpis", params={"since": now - days * 86400, "until": now, "top": top}
    )
    if json_out:
        emit(data, True)
        return
    emit(data["days"], False, ["day", "currency", "revenue", "tokens"], "revenue per day")
    emit(data["top_tenants"], False, ["tenant", "currency", "revenue"], "top tenants")
    emit(data["top_models"], False, ["model", "currency", "revenue"], "top models")
    for currency, total in data["revenue_total"].items():
        console.print(f"revenue {total} {currency}; ARPU {data['arpu'][currency]} {currency}")


def reconcile(url: Url = None, json_out: Json = False) -> None:
    """Compare the ledger with each replica's own counters, and invoices with their charges
    and the ledger in tokens and money; exit 1 on any drift."""
    data = AdminClient(url).call("GET", "/admin/reconcile")
    if json_out:
        emit(data, True)
    else:
        rows = [
            {
                "replica": r["replica"],
                "status": r["status"],
                **{f"{k} (ledger-engine)": v for k, v in (r.get("drift") or {}).items()},
            }
            for r in data["replicas"]
        ]
        emit(rows, False, title="ledger against engine counters")
        emit(
            data["invoices"],
            False,
            [
                "invoice",
                "tenant",
                "lines",
                "charges",
                "ledger",
                "amount_lines",
                "amount_charges",
                "mispriced_charges",
                "total",
                "total_expected",
                "status",
            ],
            "invoices against their charges and the ledger: tokens and money",
        )
        console.print("no drift" if data["ok"] else "[red]drift found[/]")
    if not data["ok"]:
        raise typer.Exit(1)


@budgets.command("set")
def budgets_set(
    holder: Annotated[str, typer.Argument(help="tenant:<name>, key:<id> or agent:<id>")],
    limit: Annotated[str, typer.Option(help="The most it may spend, e.g. 100.00")],
    period: Annotated[str, typer.Option(help="day | month | total")] = "month",
    currency: Annotated[str, typer.Option()] = "USD",
    soft_pct: Annotated[int, typer.Option(min=1, max=100, help="Alert past this share")] = 80,
    url: Url = None,
    json_out: Json = False,
) -> None:
    """A hard spending limit, held by reservation; requests past it get 429."""
    body = {
        "holder": holder,
        "limit": limit,
        "period": period,
        "currency": currency,
        "soft_pct": soft_pct,
    }
    data = AdminClient(url).call("POST", "/admin/budgets", json=body)
    emit(data, True) if json_out else console.print(f"budget [bold]{data['id']}[/] for {holder}")


@budgets.command("list")
def budgets_list(url: Url = None, json_out: Json = False) -> None:
    data = AdminClient(url).call("GET", "/admin/budgets")["data"]
    cols = ["id", "holder", "limit", "used", "currency", "period", "soft_pct"]
    emit(data, json_out, cols, "budgets")


@budgets.command("retire")
def budgets_retire(budget_id: str, url: Url = None, json_out: Json = False) -> None:
    data = AdminClient(url).call("DELETE", f"/admin/budgets/{budget_id}")
    emit(data, True) if json_out else console.print(f"retired [bold]{budget_id}[/]")


@budgets.command("grant")
def budgets_grant(
    tenant: str,
    amount: Annotated[str, typer.Option(help="Prepaid money, e.g. 500.00")],
    currency: Annotated[str, typer.Option()] = "USD",
    note: Annotated[str, typer.Option()] = "",
    url: Url = None,
    json_out: Json = False,
) -> None:
    """Prepaid credit: with credits, a tenant spends at most what it was granted."""
    body = {"tenant": tenant, "amount": amount, "currency": currency, "note": note}
    data = AdminClient(url).call("POST", "/admin/credits", json=body)
    emit(data, True) if json_out else console.print(f"granted {amount} {currency} to {tenant}")
