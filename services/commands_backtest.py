"""``trainwire backtest`` and ``trainwire strategies``.

``backtest STRATEGY|MODEL``: a rule strategy with ``--param`` values, or a stored model (a name
with ``/``), followed live like ``train`` (bars for the job, its step and the candles; plain
lines when stdout is not a terminal; ``--json`` one object per event), then the stats beside
buy-and-hold. Flag values that cannot work exit 2 before anything is sent.
"""

from __future__ import annotations

import argparse

from services import report_kinds
from services.commands import follow_job, json_line
from services.exit_codes import ExitCode
from services.flags import FlagError, key_values, market_options
from shared.client import Client
from shared.client.kind_requests import is_model


def cmd_backtest(args: argparse.Namespace, client: Client) -> int:
    params = key_values(args.param, "--param")
    if params and is_model(args.target):
        raise FlagError(f"{args.target} is a stored model: --param is for rule strategies")
    if not is_model(args.target) and (len(args.symbols) != 1 or len(args.timeframes) != 1):
        raise FlagError("a rule strategy backtests one market: give --symbols S --timeframes T")
    options = market_options(args)
    try:
        events = client.backtest(
            args.target, args.symbols, args.timeframes, params=params, **options
        )
    except ValueError as exc:
        raise FlagError(str(exc)) from None
    return follow_job(args, client, events)


def cmd_strategies(args: argparse.Namespace, client: Client) -> int:
    strategies = client.strategies()
    if args.json:
        for info in strategies:
            print(json_line(info))
        return ExitCode.OK
    for line in report_kinds.strategy_lines(strategies):
        print(line)
    return ExitCode.OK
