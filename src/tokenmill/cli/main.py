"""The `tokenmill` command."""

import typer

from tokenmill.cli import (
    admin_commands,
    billing_commands,
    drain_commands,  # noqa: F401 - registers `node drain` and `node undrain`
    economics_commands,
    export_commands,
    fleet_commands,
    node_commands,
    plan_commands,
    principal_commands,
    rollout_commands,  # noqa: F401 - registers `models update`
    user_commands,
)
from tokenmill.cli.bench import bench
from tokenmill.cli.up import up

app = typer.Typer(
    help="TokenMill: serve models, meter every token.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold keys
)
app.command()(up)
app.command()(bench)
app.command()(plan_commands.plan)
app.command()(admin_commands.usage)
app.command("export-usage")(export_commands.export_usage)
app.command()(admin_commands.login)
app.command()(admin_commands.doctor)
app.command()(fleet_commands.fleet)
app.add_typer(economics_commands.report, name="report")
app.command()(billing_commands.reconcile)
app.add_typer(admin_commands.models, name="models")
app.add_typer(admin_commands.tenants, name="tenants")
app.add_typer(principal_commands.keys, name="keys")
app.add_typer(principal_commands.agents, name="agents")
app.add_typer(user_commands.users, name="users")
app.add_typer(admin_commands.audit, name="audit")
app.add_typer(billing_commands.prices, name="prices")
app.add_typer(billing_commands.invoices, name="invoices")
app.add_typer(billing_commands.budgets, name="budgets")
app.add_typer(node_commands.node, name="node")
