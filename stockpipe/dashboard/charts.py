"""The dashboard's and the report's Plotly figures, built from the marts' frames
(:mod:`stockpipe.dashboard.data`). Each takes a frame and returns a figure; nothing here
queries or renders."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

SMA_COLORS = {"sma_5": "#1f77b4", "sma_20": "#ff7f0e", "sma_50": "#9467bd"}
RSI_BANDS = (30, 70)
LAYOUT = {"margin": {"l": 40, "r": 20, "t": 40, "b": 30}, "template": "plotly_white"}


def price_chart(history: pd.DataFrame, symbol: str) -> go.Figure:
    """Daily candlesticks with SMA 5/20/50 over the volume bars."""
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.03
    )
    x = history["session_date"]
    figure.add_trace(
        go.Candlestick(
            x=x,
            open=history["open"],
            high=history["high"],
            low=history["low"],
            close=history["close"],
            name=symbol,
        ),
        row=1,
        col=1,
    )
    for column, color in SMA_COLORS.items():
        figure.add_trace(
            go.Scatter(
                x=x,
                y=history[column],
                name=column.replace("_", " ").upper(),
                line={"color": color, "width": 1.3},
            ),
            row=1,
            col=1,
        )
    up = history["close"] >= history["open"]
    figure.add_trace(
        go.Bar(
            x=x,
            y=history["volume"],
            name="volume",
            marker_color=up.map({True: "#26a69a", False: "#ef5350"}).tolist(),
            showlegend=False,
        ),
        row=2,
        col=1,
    )
    figure.update_layout(
        title=f"{symbol}: daily bars, SMA 5/20/50",
        xaxis_rangeslider_visible=False,
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        height=520,
        **LAYOUT,
    )
    # Weekends are no sessions: no gaps for them.
    figure.update_xaxes(rangebreaks=[{"bounds": ["sat", "mon"]}])
    figure.update_yaxes(title_text="price", row=1, col=1)
    figure.update_yaxes(title_text="volume", row=2, col=1)
    return figure


def rsi_chart(history: pd.DataFrame, symbol: str) -> go.Figure:
    """RSI(14) with the 30 (oversold) and 70 (overbought) bands."""
    figure = go.Figure(
        go.Scatter(x=history["session_date"], y=history["rsi_14"], name="RSI 14", mode="lines")
    )
    low, high = RSI_BANDS
    figure.add_hrect(y0=low, y1=high, fillcolor="#9e9e9e", opacity=0.12, line_width=0)
    for level in RSI_BANDS:
        figure.add_hline(
            y=level, line_dash="dash", line_color="#757575", annotation_text=str(level)
        )
    figure.update_layout(title=f"{symbol}: RSI(14), Wilder", height=260, **LAYOUT)
    figure.update_yaxes(range=[0, 100])
    return figure


def volatility_chart(history: pd.DataFrame, symbol: str) -> go.Figure:
    """30-session volatility of daily log returns, annualised (percent)."""
    figure = go.Figure(
        go.Scatter(
            x=history["session_date"],
            y=history["volatility_30"] * 100,
            name="volatility 30",
            mode="lines",
            fill="tozeroy",
        )
    )
    figure.update_layout(title=f"{symbol}: 30-session volatility, annualised", height=260, **LAYOUT)
    figure.update_yaxes(title_text="%")
    return figure


def range_52w_chart(latest: pd.Series, symbol: str) -> go.Figure:
    """Where the last close sits in the 52-week range, with its distance from each end."""
    low, high, close = latest["low_52w"], latest["high_52w"], latest["close"]
    figure = go.Figure(
        go.Indicator(
            mode="number+gauge+delta",
            value=close,
            delta={"reference": high, "relative": True, "valueformat": ".1%"},
            number={"valueformat": ",.2f"},
            gauge={
                "shape": "bullet",
                "axis": {"range": [low, high]},
                "bar": {"color": "#1f77b4"},
            },
        )
    )
    figure.update_layout(
        title=f"{symbol}: 52-week range {low:,.2f} - {high:,.2f}, last close vs the high",
        height=200,
        **LAYOUT,
    )
    return figure


def intraday_chart(minutes: pd.DataFrame, symbol: str) -> go.Figure:
    """The latest session's 1-minute closes with their MA5 and MA20."""
    figure = go.Figure()
    for column, name in (("close", "close"), ("ma5", "MA5"), ("ma20", "MA20")):
        figure.add_trace(go.Scatter(x=minutes["ts"], y=minutes[column], name=name, mode="lines"))
    day = pd.Timestamp(minutes["ts"].iloc[0]).date() if len(minutes) else ""
    figure.update_layout(title=f"{symbol}: 1-minute bars {day}", height=300, **LAYOUT)
    return figure


def movers_chart(movers: pd.DataFrame) -> go.Figure:
    """The latest session's biggest moves, as bars."""
    colors = ["#26a69a" if v >= 0 else "#ef5350" for v in movers["change_pct"]]
    figure = go.Figure(
        go.Bar(x=movers["change_pct"], y=movers["symbol"], orientation="h", marker_color=colors)
    )
    figure.update_layout(title="Top movers: change on the day, %", height=300, **LAYOUT)
    figure.update_yaxes(autorange="reversed")
    return figure
