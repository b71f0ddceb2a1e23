"""What the routes need, built once per app (see app.py)."""

import time
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy import Engine
from starlette.requests import Request

from tokenmill.billing.budgets import MoneyBudgets
from tokenmill.billing.invoices import Invoices
from tokenmill.billing.prices import PriceBook
from tokenmill.config import Settings
from tokenmill.economics.accounting import PowerOf
from tokenmill.economics.hourly import HourlyEconomics
from tokenmill.economics.live import estimated_power
from tokenmill.gateway.proxy import InferenceProxy
from tokenmill.metering.service import Metering
from tokenmill.observe.metrics import GatewayMetrics
from tokenmill.runtime.deployments import Deployments
from tokenmill.security.accounts import Accounts
from tokenmill.security.agents import Agents
from tokenmill.security.audit import AuditLog
from tokenmill.security.refusals import RefusalTally
from tokenmill.security.sessions import Sessions
from tokenmill.security.throttle import AuthThrottle
from tokenmill.security.users import Users


@dataclass
class Services:
    settings: Settings
    db: Engine
    accounts: Accounts
    deployments: Deployments
    metering: Metering
    metrics: GatewayMetrics
    proxy: InferenceProxy
    audit: AuditLog
    agents: Agents
    auth_throttle: AuthThrottle
    refusals: RefusalTally  # unauthenticated refusals, audited in aggregate
    prices: PriceBook
    invoices: Invoices
    budgets: MoneyBudgets
    http: aiohttp.ClientSession  # the gateway's pool, for asking engines directly
    users: Users  # who signs in to the console
    sessions: Sessions  # the console's signed-in browsers
    economics_hours: HourlyEconomics  # closed hours' measures, for the economics report
    power_of: PowerOf = estimated_power  # a node's draw over a window, for the economics
    started_at: float = field(default_factory=time.time)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
