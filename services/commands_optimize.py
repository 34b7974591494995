"""``trainwire optimize`` and ``trainwire configurations list|show|download``.

``optimize STRATEGY --param NAME=LOW:HIGH[:STEP] ...`` (or ``--spec FILE.yaml``): followed
live (overall, step breadcrumb, trials with best/current score, the best parameters so far,
the candles of the running trial), then the best parameters with in- and out-of-sample stats,
the overfit verdict and the stored configuration's name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services import report_kinds
from services.commands import follow_job, json_line, print_table
from services.exit_codes import ExitCode
from services.flags import FlagError, market_options
from services.optimize_spec import merged
from shared.client import Client


def cmd_optimize(args: argparse.Namespace, client: Client) -> int:
    spec = merged(args)
    if len(spec.symbols) != 1 or len(spec.timeframes) != 1:
        raise FlagError("an optimization searches one market: one symbol and one timeframe")
    options = {**spec.options, **market_options(args)}
    try:
        events = client.optimize(
            spec.strategy, spec.symbols, spec.timeframes, space=spec.space, **options
        )
    except ValueError as exc:
        raise FlagError(str(exc)) from None
    return follow_job(args, client, events)


def cmd_configurations_list(args: argparse.Namespace, client: Client) -> int:
    refs = client.configurations(strategy=args.strategy_name)
    if args.json:
        for ref in refs:
            print(json_line(ref))
        return ExitCode.OK
    print_table(
        report_kinds.CONFIGURATION_HEADERS, [report_kinds.configuration_row(r) for r in refs]
    )
    return ExitCode.OK


def cmd_configurations_show(args: argparse.Namespace, client: Client) -> int:
    ref, text = client.configuration(args.name)
    if args.json:
        print(text.strip() or json_line(ref))
        return ExitCode.OK
    for line in report_kinds.configuration_lines(ref):
        print(line)
    return ExitCode.OK


def cmd_configurations_download(args: argparse.Namespace, client: Client) -> int:
    path = client.download_configuration(args.name, Path(args.dest))
    print(json.dumps({"file": str(path)}) if args.json else path)
    return ExitCode.OK
