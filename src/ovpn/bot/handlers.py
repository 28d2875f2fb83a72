"""Telegram updates: the owner gate, the menu, the screens and the confirmed restarts."""

from __future__ import annotations

import logging
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    TypeHandler,
)

from ovpn.bot import screens
from ovpn.bot.callbacks import (
    SCREENS,
    AskRestart,
    CancelRestart,
    ConfirmRestart,
    Menu,
    Screen,
    parse_callback,
    screen_data,
)
from ovpn.bot.docker_api import DockerError
from ovpn.bot.runtime import Runtime

log = logging.getLogger("ovpn-telegram-bot")
MENU_TEXT = "<b>{server}</b>: choose a screen"


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def menu_keyboard() -> InlineKeyboardMarkup:
    buttons = [_button(name.capitalize(), screen_data(name)) for name in SCREENS]
    return InlineKeyboardMarkup([buttons[:3], buttons[3:]])


def screen_keyboard(rt: Runtime, name: str) -> InlineKeyboardMarkup:
    rows = []
    if name == "services":
        restart = [_button(f"↻ {s.name}", f"r:{s.name}") for s in rt.config.services]
        rows += [restart[i : i + 3] for i in range(0, len(restart), 3)]
    rows.append([_button("Refresh", screen_data(name)), _button("Menu", "m")])
    return InlineKeyboardMarkup(rows)


async def screen_text(rt: Runtime, name: str) -> str:
    config, probes = rt.config, rt.probes
    if name in ("status", "services", "doctor"):
        rows = await rt.service_rows()
        if name == "services":
            return screens.format_services(config.server_name, rows)
        agent = await probes.agent("/health")
        if name == "status":
            return screens.format_status(config.server_name, config.server_role, rows, agent)
        probed = [(probe, await probes.http_ok(url)) for probe, url in config.probes]
        checks = screens.doctor_checks(rows, agent, await probes.firing_alerts(), probed)
        return screens.format_doctor(config.server_name, checks)
    if name == "users":
        return screens.format_users(await probes.agent("/users/status"))
    if name == "traffic":
        return screens.format_traffic(await probes.agent("/stats/total"))
    return screens.format_quota(await probes.agent("/quota/status"))


def register(app: Application, rt: Runtime) -> None:  # type: ignore[type-arg]
    owner = rt.config.owner_user_id
    for name, text in (
        ("ovpn_bot_updates_total", "Telegram updates received."),
        ("ovpn_bot_ignored_updates_total", "Updates from anyone but the owner, ignored without an answer."),
    ):
        rt.metrics.declare_counter(name, text)
    for service in rt.config.services:
        for result in ("ok", "failed"):
            rt.metrics.declare_counter("ovpn_bot_restarts_total", "Restarts by service and result.",
                                       {"service": service.name, "result": result})  # fmt: skip

    async def gate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        rt.metrics.counter("ovpn_bot_updates_total", "")
        user = update.effective_user
        if user is None or user.id != owner:
            rt.metrics.counter("ovpn_bot_ignored_updates_total", "")
            raise ApplicationHandlerStop

    async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await context.bot.send_message(owner, MENU_TEXT.format(server=escape(rt.config.server_name)),
                                       parse_mode=ParseMode.HTML, reply_markup=menu_keyboard())  # fmt: skip

    def command(name: str) -> CommandHandler:  # type: ignore[type-arg]
        async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await context.bot.send_message(owner, await screen_text(rt, name), parse_mode=ParseMode.HTML,
                                           reply_markup=screen_keyboard(rt, name))  # fmt: skip

        return CommandHandler(name, show)

    async def edit(update: Update, text: str, keyboard: InlineKeyboardMarkup | None) -> None:
        query = update.callback_query
        assert query is not None
        try:
            await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=keyboard)
        except BadRequest as e:
            if "not modified" not in e.message.lower():
                raise

    async def restart(service_name: str) -> None:
        service = rt.config.service(service_name)
        assert service is not None
        try:
            state = await rt.docker.restart_and_wait(service.container, rt.config.restart_timeout)
            ok, detail = state.ok, state.describe()
        except DockerError as e:
            ok, detail = False, str(e)
        rt.metrics.counter(
            "ovpn_bot_restarts_total", "", {"service": service.name, "result": "ok" if ok else "failed"}
        )
        name = f"<b>{escape(service.name)}</b>"
        rt.outbox.put(
            [owner],
            f"✅ {name}: restarted, healthy" if ok else f"❌ {name}: restart FAILED: {escape(detail)}",
        )
        log.info("restart of %s: %s", service.name, "ok" if ok else f"FAILED ({detail})")

    async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        action = parse_callback(query.data or "", [s.name for s in rt.config.services])
        if action is None:
            await query.answer("Unknown button")
            return
        if isinstance(action, Menu):
            await query.answer()
            await edit(update, MENU_TEXT.format(server=escape(rt.config.server_name)), menu_keyboard())
        elif isinstance(action, Screen):
            await query.answer()
            await edit(update, await screen_text(rt, action.name), screen_keyboard(rt, action.name))
        elif isinstance(action, AskRestart):
            await query.answer()
            nonce = rt.confirmations.ask(action.service)
            keyboard = InlineKeyboardMarkup(
                [[_button("Confirm", f"y:{nonce}"), _button("Cancel", f"n:{nonce}")]]
            )
            await edit(update, f"Restart <b>{escape(action.service)}</b>?", keyboard)
        elif isinstance(action, CancelRestart):
            rt.confirmations.take(action.nonce)
            await query.answer("Cancelled")
            await edit(
                update,
                "Restart cancelled: nothing was restarted.",
                InlineKeyboardMarkup([[_button("Menu", "m")]]),
            )
        elif isinstance(action, ConfirmRestart):
            service_name = rt.confirmations.take(action.nonce)
            if service_name is None:
                await query.answer("This confirmation has expired")
                await edit(update, "The confirmation expired: nothing was restarted.", None)
                return
            await query.answer(f"Restarting {service_name}…")
            await edit(update, f"Restarting <b>{escape(service_name)}</b>…", None)
            await restart(service_name)

    app.add_handler(TypeHandler(Update, gate), group=-1)
    app.add_handler(CommandHandler(["start", "menu"], menu))
    for name in SCREENS:
        app.add_handler(command(name))
    app.add_handler(CallbackQueryHandler(on_callback, block=False))
