"""Wiring: settings -> store -> services -> FastAPI app."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Engine
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from tokenmill import __version__
from tokenmill.api import (
    admin_routes,
    billing_routes,
    economics_routes,
    export_routes,
    fleet_routes,
    openai_routes,
    responses_routes,
    user_routes,
)
from tokenmill.api.errors import install_error_handlers
from tokenmill.api.guard import caller
from tokenmill.api.hot_path import HotPathRouter
from tokenmill.api.middleware import AdminAuditMiddleware, RequestIdMiddleware
from tokenmill.api.openapi_doc import install_error_docs
from tokenmill.api.secure_headers import SecureHeadersMiddleware
from tokenmill.api.state import Services, services
from tokenmill.billing.budgets import AlertSink, Budget, MoneyBudgets
from tokenmill.billing.invoices import Invoices
from tokenmill.billing.prices import PriceBook
from tokenmill.billing.rating import rate_pending, rate_records
from tokenmill.bootstrap import open_database
from tokenmill.config import Settings
from tokenmill.console import routes as console_routes
from tokenmill.console.routes import STATIC
from tokenmill.core.money import Money, parse_amount
from tokenmill.core.periodic import Periodic
from tokenmill.economics.default_node import nodes_or_default
from tokenmill.economics.hourly import HourlyEconomics
from tokenmill.economics.live import logged_or_estimated
from tokenmill.economics.nodes import NodeConfigError
from tokenmill.engines.base import ReplicaSpec
from tokenmill.fleet.watch import NodeWatch, device_samples, fleet_nodes
from tokenmill.gateway.content_guard import ContentGuard, PiiKinds
from tokenmill.gateway.proxy import InferenceProxy
from tokenmill.gateway.response_store import ResponseStore
from tokenmill.metering.cloudevents import CloudEventsExporter
from tokenmill.metering.ledger import tokens_used
from tokenmill.metering.rollup import history_retention
from tokenmill.metering.service import Metering
from tokenmill.observe.genai_spans import GenAiSpans
from tokenmill.observe.metrics import GatewayMetrics
from tokenmill.observe.power import PowerLog, PowerSource
from tokenmill.runtime.autoscaling import AutoscaleLoop, ScaleTiming
from tokenmill.runtime.cordons import Cordons
from tokenmill.runtime.deployments import Deployments
from tokenmill.runtime.hosts import EngineHost
from tokenmill.runtime.instances import HEARTBEAT_S, ReplicaInstances
from tokenmill.scheduling.core import SchedulerCore
from tokenmill.scheduling.dispatcher import Dispatcher
from tokenmill.scheduling.fair_queue import FairQueue, FcfsQueue
from tokenmill.scheduling.router import ReplicaPicker, RoundRobinPicker
from tokenmill.security.accounts import Accounts, TenantPii
from tokenmill.security.agents import Agents
from tokenmill.security.audit import AuditLog, load_or_create_key, who
from tokenmill.security.budgets import SpentLoader, TokenBudgets
from tokenmill.security.integrity import Integrity
from tokenmill.security.keys import KeyRing, Principal
from tokenmill.security.limits import KeyLimiter
from tokenmill.security.policy import DenialSink, RequestPolicy
from tokenmill.security.profiles import Profile
from tokenmill.security.refusals import RefusalTally
from tokenmill.security.retention import AuditRetention
from tokenmill.security.roles import Permission
from tokenmill.security.sessions import Sessions
from tokenmill.security.throttle import AuthThrottle
from tokenmill.security.users import Users

if TYPE_CHECKING:  # Ray is an optional extra: imported only under --runtime ray
    from tokenmill.runtime.node_agents import RayNodes

log = logging.getLogger(__name__)
# Usage is priced as the ledger takes it; a sweep every minute over recent days catches what a
# failed pass left (invoices, KPIs and budgets at start sweep first, all of it).
SWEEP_EVERY_S, SWEEP_DAYS = 60.0, 2
INTEGRITY_EVERY_S = 3600.0  # audit chain, invoice seals, triggers: for the audit-verify alert
SESSION_SWEEP_S = 3600.0  # console sessions long over are deleted
ECONOMICS_WARM_S = 3600.0  # each hour, once final, is measured for the economics report


def _engine_hosts(
    settings: Settings, cordons: Cordons
) -> Callable[[ReplicaSpec], EngineHost] | None:
    """Where replicas' engines run: here (None) or on a Ray cluster (imports Ray only then)."""
    if settings.runtime != "ray":
        return None
    from tokenmill.runtime.ray_host import ray_hosts

    return ray_hosts(settings.ray_address, cordons.names, settings.node_name)


def _ray_nodes(settings: Settings, power: PowerLog) -> "RayNodes | None":
    """Under the `ray` runtime, an agent per Ray node reporting its devices and power."""
    if settings.runtime != "ray":
        return None
    from tokenmill.runtime.node_agents import RayNodes

    return RayNodes(settings.ray_address, settings.node_name, power.record, settings.power_sample_s)


def _device_samples(watch: NodeWatch, ray_nodes: "RayNodes | None") -> list[dict[str, object]]:
    remote = ray_nodes.reports() if ray_nodes is not None else []
    return [s for found in fleet_nodes(watch.latest, remote) for s in device_samples(found)]


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = open_database(settings)
        accounts = Accounts(db, KeyRing())
        accounts.load_keyring()
        users = Users(db)
        economics_hours = HourlyEconomics(db)
        economics_warmth = Periodic(  # the last month's closed hours, measured ahead of asking
            "economics hours",
            ECONOMICS_WARM_S,
            lambda: asyncio.to_thread(_warm_economics, settings, economics_hours),
        )
        sessions = Sessions(
            db, users, accounts.keyring, settings.console_idle_s, settings.console_session_s
        )
        session_sweep = Periodic(
            "console session sweep", SESSION_SWEEP_S, lambda: asyncio.to_thread(sessions.forget_old)
        )
        metering = Metering(db, settings.journal_dir, settings.journal_sync)
        metering.start()
        # llama.cpp closes idle connections after 5 s; aiohttp sweeps idle ones every
        # keepalive_timeout, so one may idle up to twice that: 2 s keeps us under 5 s.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=2)
        timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s, sock_connect=5)
        http = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
        cordons = Cordons(db)
        await asyncio.to_thread(cordons.load)
        hosts = _engine_hosts(settings, cordons)
        deployments = Deployments(db, http, settings.log_dir, hosts, cordons, settings.node_name)
        instances = ReplicaInstances(db, settings.node_name)
        await asyncio.to_thread(instances.claim)
        deployments.subscribe(instances.changed)
        heartbeat = Periodic("replica heartbeat", HEARTBEAT_S, instances.heartbeat)
        metrics = GatewayMetrics()
        metrics.watch_replicas(deployments.all_replicas)
        picker = RoundRobinPicker() if settings.router == "round-robin" else ReplicaPicker()
        queue_type = FcfsQueue if settings.fairness == "fcfs" else FairQueue
        core = SchedulerCore(picker=picker, queue_type=queue_type, weights=accounts.weights())
        guard = ContentGuard(
            settings.pii_mode,
            accounts.pii_modes(),
            metrics.pii_found,
            PiiKinds(settings.pii_kinds, accounts.pii_kinds(), settings.pii_ner_model),
        )
        # Admin routes change tenants from the threadpool; scheduler and guard live on the loop.
        loop = asyncio.get_running_loop()

        def apply(tenant: str, weight: int, pii: TenantPii) -> None:
            loop.call_soon_threadsafe(core.set_weight, tenant, weight)
            loop.call_soon_threadsafe(guard.set_mode, tenant, pii.mode)
            loop.call_soon_threadsafe(guard.kinds.set, tenant, pii.kinds)

        accounts.on_tenant_change(apply)
        dispatcher = Dispatcher(core)
        metrics.watch_queues(dispatcher.core.queue_depths)
        prices = await asyncio.to_thread(PriceBook(db).load)
        power_source = await asyncio.to_thread(PowerSource.detect)  # runs vendor tools
        for meter, why in power_source.unavailable.items():
            log.info("power: %s not used: %s", meter, why)
        power = PowerLog(db, power_source)
        given = settings.audit_key.get_secret_value() if settings.audit_key else None
        key = load_or_create_key(given, settings.data_dir / "audit.key")
        audit = AuditLog(db, key, settings.audit_checkpoints)
        integrity = Integrity(db, audit)  # finance: refuses to start on what does not verify
        for note in await asyncio.to_thread(integrity.at_start, settings.profile):
            log.warning("%s", note)
        metrics.watch_audit(lambda: integrity.last_ok)
        integrity_checks = Periodic(  # at_start has just checked: the next in an hour
            "integrity check",
            INTEGRITY_EVERY_S,
            lambda: asyncio.to_thread(integrity.check),
            first_after_s=INTEGRITY_EVERY_S,
        )
        refusals = RefusalTally(audit)
        budgets = TokenBudgets(_spent_loader(db))
        metering.on_inserted(lambda records: rate_records(db, prices, records))
        await asyncio.to_thread(rate_pending, db, prices)  # so spend so far counts in full
        money = MoneyBudgets(db, prices, _alerts(audit), parse_amount(settings.budget_tolerance))
        await asyncio.to_thread(money.load)
        metrics.watch_budgets(money.used_ratios)
        policy = RequestPolicy(
            KeyLimiter(), budgets, _denials(audit), settings.budget_max_tokens, money
        )
        spans = GenAiSpans.to_otlp(settings.otlp_endpoint) if settings.otlp_endpoint else None
        proxy = InferenceProxy(
            deployments,
            dispatcher,
            metering,
            metrics,
            http,
            settings.queue_waits(),
            policy,
            guard,
            refuse_unbilled=settings.profile is Profile.FINANCE,
            spans=spans,
        )
        metrics.watch_metering(metering.health)
        node_watch = app.state.node_watch = NodeWatch(settings.node_name)
        await node_watch.refresh()
        ray_nodes = app.state.ray_nodes = _ray_nodes(settings, power)
        metrics.watch_devices(lambda: _device_samples(node_watch, ray_nodes))
        node_watch.start()
        if ray_nodes is not None:
            ray_nodes.start()
        app.state.services = Services(
            settings,
            db,
            accounts,
            deployments,
            metering,
            metrics,
            proxy,
            audit,
            Agents(db, accounts),
            AuthThrottle(settings.auth_failures_per_minute),
            refusals,
            prices,
            Invoices(db, prices, integrity.seals),
            money,
            http,
            users,
            sessions,
            economics_hours,
            logged_or_estimated(power),
        )
        power_log = power.periodic(settings.power_sample_s, settings.node_name)
        if power_source.meters:  # with no meter, estimates are made when a report asks
            power_log.start()
        retention = AuditRetention(audit, settings.audit_retention_days)
        retention.start()
        history_pruning = history_retention(db, settings.usage_history_days)
        history_pruning.start()
        integrity_checks.start()
        session_sweep.start()
        economics_warmth.start()
        refusal_summaries = Periodic(
            "refusal summaries", refusals.window_s, lambda: asyncio.to_thread(refusals.flush)
        )
        refusal_summaries.start()
        rating = Periodic(
            "rating sweep",
            SWEEP_EVERY_S,
            lambda: asyncio.to_thread(rate_pending, db, prices, time.time() - SWEEP_DAYS * 86400),
        )
        rating.start()
        events = _event_export(settings, db)
        if events is not None:
            events.start()
        await deployments.start_all()
        heartbeat.start()
        timing = ScaleTiming(
            settings.scale_up_after_s, settings.scale_down_after_s, settings.scale_to_zero_after_s
        )
        autoscaler = AutoscaleLoop(deployments, dispatcher.core, timing)
        autoscaler.start()
        try:
            yield
        finally:
            if events is not None:
                await events.stop()
            await rating.stop()
            await power_log.stop()
            await retention.stop()
            await history_pruning.stop()
            await integrity_checks.stop()
            await session_sweep.stop()
            economics_hours.close()
            await economics_warmth.stop()
            await refusal_summaries.stop()
            await asyncio.to_thread(refusals.flush)  # the window still open
            await autoscaler.stop()
            await heartbeat.stop()
            await node_watch.stop()
            if spans is not None:
                await asyncio.to_thread(spans.shutdown)  # export what is queued
            if ray_nodes is not None:
                await ray_nodes.stop()
            await deployments.stop_all()
            await instances.drain()
            await metering.close()
            await http.close()
            db.dispose()

    app = FastAPI(title="TokenMill", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    install_error_docs(app)
    app.include_router(openai_routes.router)
    app.include_router(responses_routes.router)
    app.state.response_store = ResponseStore()  # memory only: see gateway/response_store.py
    app.include_router(admin_routes.router)
    app.include_router(billing_routes.router)
    app.include_router(export_routes.router)
    app.include_router(economics_routes.router)
    app.include_router(fleet_routes.router)
    app.include_router(user_routes.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.include_router(console_routes.router)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        """Prometheus exposition; scrape with an operator or auditor key (bearer token)."""
        svc = services(request)
        await caller(request, svc, Permission.METRICS_READ)
        return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _warm_economics(settings: Settings, hours: HourlyEconomics) -> None:
    try:
        nodes, _ = nodes_or_default(settings.economics_path, settings.node_name)
    except NodeConfigError as exc:  # the economics route reports it; nothing to measure by
        log.warning("economics: the node cost file is invalid: %s", exc)
        return
    hours.warm(nodes)


def _event_export(settings: Settings, db: Engine) -> Periodic | None:
    """Usage as CloudEvents to `events_url`, at least once, with the request id as event id."""
    if settings.events_url is None:
        return None
    token = settings.events_token.get_secret_value() if settings.events_token else None
    exporter = CloudEventsExporter(
        db,
        settings.events_url,
        cursor_path=settings.data_dir / "events.cursor.json",
        source=settings.events_source,
        settle_s=settings.events_settle_s,
        headers={"Authorization": f"Bearer {token}"} if token else None,
    )
    return exporter.periodic(settings.events_every_s)


def _alerts(audit: AuditLog) -> AlertSink:
    async def record(budget: Budget, used_pico: int) -> None:
        used = Money(used_pico, budget.currency).text(6)
        log.warning(
            "budget %s of %s passed %d%%: %s %s used",
            budget.id,
            budget.holder,
            budget.soft_pct,
            used,
            budget.currency,
        )
        await asyncio.to_thread(
            audit.append,
            "tokenmill",
            "budget.soft_limit",
            "alert",
            resource=f"budget:{budget.id}",
            detail={**budget.view(), "used": used},
        )

    return record


def _spent_loader(db: Engine) -> SpentLoader:
    async def load(holder: str, since: float | None) -> int:
        return await asyncio.to_thread(tokens_used, db, holder, since)

    return load


def _denials(audit: AuditLog) -> DenialSink:
    async def record(principal: Principal, what: str, detail: dict[str, Any]) -> None:
        actor, behalf = who(principal)
        await asyncio.to_thread(
            audit.append, actor, f"policy.{what}", "denied", on_behalf_of=behalf, detail=detail
        )

    return record


def create_asgi(settings: Settings) -> tuple[ASGIApp, FastAPI]:
    """The served ASGI app (request ids, inference fast path, FastAPI) and the FastAPI app."""
    app = create_app(settings)
    hot = HotPathRouter(app, {**openai_routes.HOT_ROUTES, **responses_routes.HOT_ROUTES})
    return SecureHeadersMiddleware(RequestIdMiddleware(AdminAuditMiddleware(hot, app))), app
