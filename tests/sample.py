"""A plugin like a third party would write, shared by the app and dispatcher tests."""

from __future__ import annotations

import asyncio
from typing import Any

from chatopsbot import (
    Arg,
    Card,
    Context,
    Delete,
    Edit,
    Option,
    Paragraph,
    PluginConfigError,
    Text,
    command,
    hookimpl,
)


@command(
    "release status",
    help="Show what runs where",
    args=(Arg("service", help="a service"),),
    options=(Option("limit", type=int, default=5, help="how many"),),
)
async def deploy_status(ctx: Context) -> Text:
    return Text(f"{ctx.args['service']} limit={ctx.args['limit']}")


@command("echo", help="Say it back", args=(Arg("words", variadic=True),))
async def echo(ctx: Context) -> Text:
    return Text(" | ".join(ctx.args["words"]))


@command("boom", help="Always fails")
async def boom(ctx: Context) -> None:
    raise RuntimeError("kaboom")


@command("slow", help="Takes too long", timeout=0.2)
async def slow(ctx: Context) -> Text:
    await asyncio.sleep(10)
    return Text("never")


@command("progress", help="Sends, edits, deletes")
async def progress(ctx: Context) -> list[Any]:
    first = await ctx.send(Text("working..."))
    scratch = await ctx.send(Text("scratch"))
    assert first.message_id
    assert scratch.message_id
    return [
        Edit(first.message_id, Card(head="Done", body=[Paragraph("all good")])),
        Delete(scratch.message_id),
        Text("in thread", reply_to=first.message_id),
    ]


@command("whisper", help="Private reply")
async def whisper(ctx: Context) -> Text:
    return Text(f"only you, {ctx.actor.name}", private=True)


@command("fields", help="Context fields")
async def whoami(ctx: Context) -> Text:
    c = ctx.actor
    return Text(
        f"{c.id}|{c.jid}|{c.name}|{ctx.conversation.jid}|{ctx.conversation.name}|"
        f"{ctx.account_id}|{ctx.config}|{ctx.command.name}"
    )


@command("many", help="Many replies", args=(Arg("count", type=int),))
async def many(ctx: Context) -> list[Text]:
    return [Text(f"reply {n}") for n in range(ctx.args["count"])]


@command("wrongtype", help="Returns junk")
async def wrongtype(ctx: Context) -> Any:
    return 42


class Sample:
    """A plugin object like a third party would write."""

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [deploy_status, echo, boom, slow, progress, whisper, whoami, many, wrongtype]

    @hookimpl
    def chatops_config(self, config: dict[str, Any]) -> str:
        greeting = config.get("greeting", "hi")
        if not isinstance(greeting, str):
            raise PluginConfigError("greeting", "expected a string")
        return greeting
