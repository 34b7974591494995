"""The parsers of ``trainwire backtest``, ``optimize``, ``strategies`` and ``configurations``.

``add_verbs(sub, client_options)`` adds them; ``client_options(parser, verb)`` is the CLI's
(``--orchestrator``, ``--json``, security; runs ``cmd_<verb>``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from shared.client.kind_requests import SAMPLERS

ClientOptions = Callable[[argparse.ArgumentParser, str], None]


def _trials(text: str) -> int | str:
    """``--trials N`` or ``all`` (the whole grid)."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of trials, or all") from None


def _market_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--symbols", nargs="+", default=[], help="one symbol for a rule strategy")
    p.add_argument("--timeframes", nargs="+", default=[], help="one timeframe, e.g. 1d or 1h")
    g = p.add_argument_group(
        "data (SYNTH symbols run on the synthetic market without these; any other symbol needs "
        "--data, --dataset or --synthetic)"
    )
    source = g.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        metavar="DIR",
        help="{SYMBOL}_{tf}.csv|parquet or {SYMBOL}.csv|parquet files in DIR, relative to the "
        "trainer's --data-dir",
    )
    source.add_argument("--dataset", metavar="NAME", help="a dataset uploaded to the orchestrator")
    source.add_argument("--synthetic", action="store_true", help="the built-in synthetic market")
    g.add_argument("--bars", type=int, default=0, help="synthetic bars per symbol")
    g.add_argument("--market-seed", type=int, default=None, help="the synthetic market's seed")
    g.add_argument("--start", default="", help="first bar to use: ISO-8601 date or time")
    g.add_argument("--end", default="", help="last bar to use (a date covers its whole day)")
    g.add_argument("--timezone", default="", help="IANA zone of the files' naive timestamps")
    s = p.add_argument_group("trading (costs, sizing, exits)")
    s.add_argument("--cash", type=float, default=None, help="starting equity (default 10000)")
    s.add_argument(
        "--commission",
        type=float,
        default=None,
        metavar="PCT",
        help="percent of the traded value per fill, e.g. 0.1 for 0.1 %%",
    )
    s.add_argument("--commission-fixed", type=float, default=None, help="cash per fill")
    s.add_argument("--slippage", type=float, default=None, metavar="BPS", help="bps per fill")
    s.add_argument(
        "--size",
        type=float,
        default=None,
        help="fraction of equity per trade, in (0, 1] (default 1)",
    )
    s.add_argument("--units", action="store_true", help="--size is units per trade instead")
    s.add_argument("--no-short", action="store_true", help="short signals mean flat")
    s.add_argument(
        "--stop-loss",
        type=float,
        default=None,
        metavar="F",
        help="exit when price moves this fraction against the entry (0.05 = 5 %%)",
    )
    s.add_argument(
        "--take-profit",
        type=float,
        default=None,
        metavar="F",
        help="exit when price moves this fraction in favour",
    )
    p.add_argument("--node", default="", help="run on this node")
    p.add_argument("--request-id", default="", help="makes a retried submit idempotent")


def add_verbs(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], client: ClientOptions
) -> None:
    p = sub.add_parser(
        "backtest",
        help="backtest a rule strategy or a stored model, live, then its stats",
        description="Backtest a rule strategy (trainwire strategies lists them) with --param "
        "values, or a stored model (a name with '/': strategy/SYMBOLS_TFS[_vN]).",
    )
    client(p, "backtest")
    p.add_argument("target", metavar="STRATEGY|MODEL")
    _market_flags(p)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy parameter (repeatable); the rest take their defaults",
    )

    p = sub.add_parser(
        "optimize",
        help="search a rule strategy's parameters (Optuna), live, then the best configuration",
        description="Each trial backtests one parameter set; the best is validated walk-forward "
        "(with --walk-forward) and stored as a configuration.",
    )
    client(p, "optimize")
    p.add_argument(
        "strategy",
        metavar="STRATEGY",
        nargs="?",
        default="",
        help="a rule strategy (or give it in --spec)",
    )
    p.add_argument(
        "--spec",
        metavar="FILE.yaml",
        default="",
        help="an optimization spec (flags given beside it override its values)",
    )
    _market_flags(p)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH[:STEP]|NAME=a,b,c",
        help="a parameter to search (repeatable): a range (int or float by the strategy's "
        "parameter) or choices",
    )
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="hold a parameter at a value (repeatable)",
    )
    p.add_argument(
        "--constraint",
        action="append",
        default=[],
        metavar="EXPR",
        help='a rule between parameters, e.g. "fast < slow" (repeatable)',
    )
    p.add_argument("--sampler", choices=tuple(SAMPLERS), default=None, help="default tpe")
    p.add_argument(
        "--trials",
        type=_trials,
        default=None,
        metavar="N|all",
        help="trial budget (default 50); all: every point of the grid (--sampler grid)",
    )
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="time budget")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (reproducible trials)")
    p.add_argument(
        "--parallel",
        type=int,
        default=None,
        metavar="N",
        help="trials at once, each in a worker process",
    )
    p.add_argument(
        "--objective",
        default=None,
        metavar="STAT",
        help='the stat to score, e.g. "Sharpe Ratio" (default)',
    )
    p.add_argument("--minimize", action="store_true", help="lower is better")
    p.add_argument(
        "--walk-forward",
        default=None,
        metavar="TRAIN:TEST[:GAP][:anchored]",
        help="validate out of sample on windows of this many bars",
    )

    client(
        sub.add_parser("strategies", help="the rule strategies and their parameters"), "strategies"
    )

    p = sub.add_parser("configurations", help="stored best configurations: list, show, download")
    verbs = p.add_subparsers(dest="configurations_command", required=True)
    q = verbs.add_parser("list", help="list stored configurations")
    client(q, "configurations_list")
    q.add_argument("--strategy", dest="strategy_name", default="", help="one strategy")
    for verb, text in (
        ("show", "a configuration's parameters and stats"),
        ("download", "save configuration.json (sha256-verified)"),
    ):
        q = verbs.add_parser(verb, help=text)
        client(q, f"configurations_{verb}")
        q.add_argument("name", help="strategy/SYMBOLS_TFS[_vN]; without _vN: the latest")
        if verb == "download":
            q.add_argument("--dest", default="configurations", help="directory to save under")
