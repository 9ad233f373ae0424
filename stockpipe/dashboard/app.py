"""The Streamlit dashboard: ``stockpipe dashboard`` (or ``streamlit run`` this file).

It reads the marts only (:mod:`stockpipe.dashboard.data`): per symbol a candlestick chart
with SMA 5/20/50 and volume, RSI(14) with its 30/70 bands, the 52-week range, volatility and
the latest session's minute bars; the watchlist's latest quotes, the top movers, how fresh
the data is and the last validation. While the NYSE session is open the page re-reads the
marts every ``STOCKPIPE_DASHBOARD__REFRESH_SECONDS``.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from stockpipe import market_calendar
from stockpipe.dashboard import PAGE_TITLE, charts, data
from stockpipe.live.snapshot import (
    forming_version,
    read_forming,
    read_snapshot,
    snapshot_dir,
    snapshot_version,
)
from stockpipe.settings import ConfigError, Settings, load_settings
from stockpipe.validation import latest_outcome


@st.cache_resource
def _reader() -> data.MartsReader:
    return data.open_reader(load_settings())


# Every read is cached on the marts' version: the embedded snapshot's name (a new build
# shows at once), or a time bucket of cache_seconds on Snowflake (page views within it
# do not reach, or resume, the warehouse).
@st.cache_data(show_spinner=False, max_entries=64)
def _symbols(version: str) -> list[str]:
    return data.symbols(_reader())


@st.cache_data(show_spinner=False, max_entries=64)
def _session_range(version: str, symbol: str):
    return data.session_range(_reader(), symbol)


@st.cache_data(show_spinner=False, max_entries=64)
def _history(version: str, symbol: str, first, last) -> pd.DataFrame:
    return data.daily_history(_reader(), symbol, first, last)


@st.cache_data(show_spinner=False, max_entries=16)
def _watchlist(version: str) -> pd.DataFrame:
    return data.watchlist(_reader())


@st.cache_data(show_spinner=False, max_entries=16)
def _movers(version: str) -> pd.DataFrame:
    return data.movers(_reader())


@st.cache_data(show_spinner=False, max_entries=64)
def _intraday(version: str, symbol: str) -> pd.DataFrame:
    return data.intraday(_reader(), symbol)


@st.cache_data(show_spinner=False, max_entries=16)
def _freshness(version: str) -> data.Freshness:
    return data.freshness(_reader())


def _ago(moment: datetime, now: datetime) -> str:
    minutes = int((now - moment).total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} days ago"


def status_line(version: str) -> None:
    """How fresh the marts are, and the last validation's outcome."""
    now = datetime.now(UTC)
    fresh = _freshness(version)
    market = "open" if market_calendar.is_market_open(now) else "closed"
    if fresh.latest_bar is not None:
        st.caption(
            f"Latest bar {fresh.latest_bar:%Y-%m-%d %H:%M} UTC ({_ago(fresh.latest_bar, now)}), "
            f"session {fresh.latest_session}, {fresh.symbols} symbols · NYSE is {market} · "
            f"page read at {now:%H:%M:%S} UTC"
        )
    outcome = latest_outcome(load_settings().validation_record)
    if outcome is None:
        st.caption("Validation: no run yet ('stockpipe validate').")
    elif outcome["success"]:
        st.success(
            f"Validation of {outcome['session']}: {outcome['passed']}/{outcome['checked']} "
            "expectations passed",
            icon=":material/check_circle:",
        )
    else:
        st.error(
            f"Validation of {outcome['session']} failed: {', '.join(outcome['failed'])}",
            icon=":material/warning:",
        )


# How the watchlist tables (the marts' and the live one) show their figures.
NUMBER_FORMATS = {
    "day chg %": "%+.2f",
    "vs open %": "%+.2f",
    "last": "%.2f",
    "VWAP": "%.2f",
    "MA5 (1m)": "%.2f",
    "MA20 (1m)": "%.2f",
}


def _number_formats(shown: pd.DataFrame) -> dict:
    return {
        label: st.column_config.NumberColumn(format=spec)
        for label, spec in NUMBER_FORMATS.items()
        if label in shown.columns
    }


def watchlist_view(version: str, watchlist: list[str]) -> None:
    st.subheader("Watchlist")
    quotes = _watchlist(version)
    # A symbol just added to the watchlist (or never fetched) is named, not silently absent.
    missing = [symbol for symbol in watchlist if symbol not in set(quotes["symbol"])]
    if missing:
        st.caption(
            f"No data yet for {', '.join(missing)}: the next ingest fetches them, "
            "'stockpipe backfill' their history."
        )
    if quotes.empty:
        st.info("No quotes yet.")
        return
    shown = quotes.rename(columns=data.WATCHLIST_LABELS)
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config=_number_formats(shown),
    )
    if quotes["change_on_day_pct"].isna().all():
        st.caption("Day change needs a previous session: backfill history to see it.")


def movers_view(version: str) -> None:
    st.subheader("Top movers")
    movers = _movers(version)
    if movers.empty:
        st.info("No moves yet: the latest session needs a previous close ('stockpipe backfill').")
        return
    st.plotly_chart(charts.movers_chart(movers), width="stretch")


def symbol_view(version: str, symbol: str, first: date, last: date) -> None:
    history = _history(version, symbol, first, last)
    if history.empty:
        st.info(f"No sessions of {symbol} between {first} and {last}.")
        return
    latest = history.iloc[-1]

    def fmt(value: float, spec: str) -> str:
        return "-" if pd.isna(value) else format(value, spec)

    columns = st.columns(5)
    columns[0].metric(
        f"{symbol} close {latest['session_date']:%Y-%m-%d}",
        fmt(latest["close"], ",.2f"),
        None if pd.isna(latest["change_pct"]) else f"{latest['change_pct']:+.2f}%",
    )
    columns[1].metric("RSI(14)", fmt(latest["rsi_14"], ".1f"))
    columns[2].metric("Volatility 30 (ann.)", fmt(latest["volatility_30"] * 100, ".1f") + " %")
    columns[3].metric("From 52w high", fmt(latest["pct_from_52w_high"], "+.1f") + " %")
    columns[4].metric("From 52w low", fmt(latest["pct_from_52w_low"], "+.1f") + " %")
    if history["sma_50"].isna().all():
        st.caption(
            "SMA 50 needs 50 sessions and RSI 14 sessions: backfill daily history "
            "('stockpipe backfill --from <date>')."
        )

    st.plotly_chart(charts.price_chart(history, symbol), width="stretch")
    left, right = st.columns(2)
    left.plotly_chart(charts.rsi_chart(history, symbol), width="stretch")
    right.plotly_chart(charts.volatility_chart(history, symbol), width="stretch")
    if not pd.isna(latest["high_52w"]):
        st.plotly_chart(charts.range_52w_chart(latest, symbol), width="stretch")
    minutes = _intraday(version, symbol)
    if not minutes.empty:
        st.plotly_chart(charts.intraday_chart(minutes, symbol), width="stretch")


def content(symbol: str, first: date, last: date) -> None:
    """Everything that follows the marts (re-run on its own while the market is open)."""
    try:
        version = _reader().version()
    except data.NoMartsYet as exc:
        st.info(str(exc))
        return
    status_line(version)
    symbol_view(version, symbol, first, last)
    left, right = st.columns([3, 2])
    with left:
        watchlist_view(version, load_settings().source.watchlist)
    with right:
        movers_view(version)


# The live tier's snapshot older than this is a tier that stopped: not shown as live.
LIVE_STALE_SECONDS = 600
LIVE_COLUMNS = {
    "symbol": "symbol",
    "last": "last",
    "change_on_day_pct": "day chg %",
    "change_vs_open_pct": "vs open %",
    "ma5": "MA5 (1m)",
    "ma20": "MA20 (1m)",
    "session_vwap": "VWAP",
    "bar_count": "bars",
    "ts": "bar (UTC)",
}


@st.cache_data(show_spinner=False, max_entries=4)
def _live(version: str, directory: str) -> dict[str, pd.DataFrame]:
    return read_snapshot(Path(directory))[1]


@st.cache_data(show_spinner=False, max_entries=4)
def _forming(version: int | None, directory: str) -> pd.DataFrame:
    return read_forming(Path(directory))


def live_view(settings: Settings) -> None:
    """The live tier (``stockpipe live``, ``stockpipe demo --live``): re-run every second on
    its own; it re-reads the snapshot only when a commit wrote a new one."""
    directory = snapshot_dir(settings)
    version = snapshot_version(directory)
    if version is None:
        return
    now = datetime.now(UTC)
    if (now - datetime.fromisoformat(version)).total_seconds() > LIVE_STALE_SECONDS:
        return
    frames = _live(version, str(directory))
    quotes = frames.get("latest_quote", pd.DataFrame())
    if quotes.empty:
        return
    st.subheader("Live")
    bar_end = pd.Timestamp(quotes["ts"].max()).tz_localize("UTC") + pd.Timedelta(minutes=1)
    quotes = quotes.copy()
    quotes["last"] = quotes["last_close"]
    forming = _forming(forming_version(directory), str(directory))
    last_price = ""
    if not forming.empty:
        # The forming minute's close is the last trade's price: newer than any final bar.
        newest = forming.set_index("symbol")
        fresher = quotes["symbol"].map(newest["ts"]) >= quotes["ts"].map(
            lambda ts: pd.Timestamp(ts).tz_localize("UTC")
        )
        quotes.loc[fresher, "last"] = quotes.loc[fresher, "symbol"].map(newest["close"])
        traded = pd.Timestamp(forming["fetched_at"].max())
        age = (pd.Timestamp(now) - traded).total_seconds()
        last_price = f"Last price at {traded:%H:%M:%S} UTC, {age:.0f} s old (minute forming) · "
    st.caption(
        f"{last_price}Newest price: the bar ending {bar_end:%H:%M} UTC, "
        f"{(pd.Timestamp(now) - bar_end).total_seconds():.0f} s ago · live marts refreshed "
        f"{(now - datetime.fromisoformat(version)).total_seconds():.0f} s ago · "
        f"page read at {now:%H:%M:%S} UTC"
    )
    shown = quotes.sort_values("symbol")[list(LIVE_COLUMNS)].rename(columns=LIVE_COLUMNS)
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config=_number_formats(shown),
    )
    symbol = st.selectbox("Live symbol", sorted(quotes["symbol"]), key="live_symbol")
    minutes = frames["minute_bars"]
    own = minutes[minutes["symbol"] == symbol].sort_values("ts")
    if not own.empty:
        st.plotly_chart(charts.intraday_chart(own, symbol), width="stretch")


def pick_range(settings: Settings, span: tuple[date, date]) -> tuple[date, date]:
    """The sessions to chart: the last ``history_days`` at first, then what the user picks."""
    first_session, last_session = span
    default_first = max(
        first_session, last_session - timedelta(days=settings.dashboard.history_days)
    )
    picked = st.sidebar.date_input(
        "Sessions",
        value=(default_first, last_session),
        min_value=first_session,
        max_value=last_session,
    )
    if isinstance(picked, tuple) and picked:
        return picked[0], picked[-1]
    return default_first, last_session


def main() -> None:
    started = time.perf_counter()
    st.set_page_config(page_title=PAGE_TITLE, page_icon="📈", layout="wide")
    st.title("stockpipe: trends")
    try:
        settings = load_settings()
    except ConfigError as exc:
        st.error(f"configuration error: {exc}")
        return
    st.fragment(run_every=1)(live_view)(settings)
    try:
        version = _reader().version()
        symbols = _symbols(version)
    except data.NoMartsYet as exc:
        st.info(str(exc))
        return
    if not symbols:
        st.info("No data yet: the marts are empty. Ingest, drain and build the trends first.")
        return
    symbol = st.sidebar.selectbox("Symbol", symbols)
    span = _session_range(version, symbol)
    if span is None:
        st.info(f"No sessions for {symbol} yet.")
        return
    first, last = pick_range(settings, span)
    refresh = data.refresh_plan(settings.dashboard.refresh_seconds, datetime.now(UTC))
    st.sidebar.caption(refresh.caption)
    st.fragment(run_every=refresh.seconds)(content)(symbol, first, last)
    # The server's time for this page (what bench_dashboard reports).
    st.session_state["render_seconds"] = time.perf_counter() - started
    st.sidebar.caption(f"Page built in {st.session_state['render_seconds']:.2f} s.")


main()
